"""A new TTS provider, written the Pipecat way: eSpeak NG (``espeak-ng``), offline.

    voiceagent serve --bot examples/custom_tts.py:factory

``EspeakTTSService`` only implements ``run_tts``: start the synthesizer, yield its audio as
``TTSAudioRawFrame`` s. Subclassing ``voiceagent.VoiceTTSService`` instead of pipecat's
``TTSService`` is what makes the heard text right after a barge-in: the base brackets each
reply with ``TTSStartedFrame`` / ``TTSStoppedFrame`` and pushes each chunk's ``TTSTextFrame``
after its audio, so the output marks every chunk and the conversation keeps exactly the chunks
the caller heard (a plain ``TTSService`` subclass is refused when the chain is built, saying so).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncGenerator, Callable
from typing import Any

from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameProcessor

from voiceagent import AgentResources, Settings, VoiceTTSService, build_call_processors

WAV_HEADER_BYTES = 44  # espeak-ng --stdout: a canonical 44-byte WAV header, then PCM16 mono


class EspeakTTSService(VoiceTTSService):
    """eSpeak NG speech synthesis in a subprocess, streamed as it is produced."""

    def __init__(self, *, voice: str = "en-us", words_per_minute: int = 165, **kwargs: Any):
        """Create the service.

        Args:
            voice: An eSpeak NG voice name (``espeak-ng --voices``).
            words_per_minute: Speaking rate.
            **kwargs: ``TTSService`` arguments (e.g. ``sample_rate``).

        Raises:
            FileNotFoundError: espeak-ng is not installed.
        """
        super().__init__(**kwargs)
        program = shutil.which("espeak-ng")
        if program is None:
            raise FileNotFoundError("espeak-ng is not installed (apt install espeak-ng)")
        self._program = program
        self._voice = voice
        self._wpm = words_per_minute
        self._to_output_rate = create_stream_resampler()

    def can_generate_metrics(self) -> bool:
        """Time to first audio is measured."""
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Speak ``text``: yield its audio, chunk by chunk, as espeak-ng writes it."""
        process = await asyncio.create_subprocess_exec(
            *(self._program, "--stdout", "-v", self._voice, "-s", str(self._wpm), "--", text),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        try:
            header = await process.stdout.readexactly(WAV_HEADER_BYTES)
            rate = int.from_bytes(header[24:28], "little")
            carry = b""
            while chunk := await process.stdout.read(4096):
                pcm = carry + chunk
                carry = pcm[len(pcm) & ~1 :]  # keep whole 16-bit samples
                audio = await self._to_output_rate.resample(
                    pcm[: len(pcm) & ~1], rate, self.sample_rate
                )
                if audio:
                    await self.stop_ttfb_metrics()
                    yield TTSAudioRawFrame(audio, self.sample_rate, 1, context_id=context_id)
        except asyncio.IncompleteReadError:
            problem = (await process.stderr.read()).decode(errors="replace").strip()
            yield ErrorFrame(error=f"espeak-ng produced no audio: {problem or 'no output'}")
        finally:
            if process.returncode is None:
                process.kill()  # interrupted: stop synthesizing what nobody will hear
            await process.wait()


class EspeakBot:
    """The library's chain with eSpeak NG as the voice (any STT and LLM the settings choose)."""

    def __init__(self, settings: Settings) -> None:
        """Keep the settings (nothing loads yet)."""
        self.resources = AgentResources(settings)

    async def start(self, progress: Callable[[str], None] | None = None) -> None:
        """Load models or start the local LLM server, as the settings need."""
        await self.resources.start(progress)

    async def stop(self) -> None:
        """Stop what ``start`` started."""
        await self.resources.stop()

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        """One call's processors, the ``tts`` stage swapped for eSpeak NG."""
        processors, _ = build_call_processors(
            settings, self.resources, overrides={"tts": lambda parts: EspeakTTSService()}
        )
        return processors


def factory(settings: Settings) -> EspeakBot:
    """``voiceagent serve --bot examples/custom_tts.py:factory``."""
    return EspeakBot(settings)
