"""Local Piper TTS (en_US-joe-medium by default) as a pipecat ``TTSService``, fully offline.

Piper synthesizes one chunk per sentence of its input (phonemize all, then one ONNX run per
sentence); each chunk is pushed as soon as Piper produces it, resampled from the voice's
22.05 kHz to the pipeline's output rate by pipecat's stream resampler.

Input text:

- a plain ``TextFrame`` (what voiceagent's SentenceAggregator sends) or an
  ``AggregatedTextFrame`` is one ready-to-speak chunk: spoken at once, not re-aggregated;
- ``LLMTextFrame`` tokens (an LLM wired straight to this TTS) are aggregated into sentences by
  pipecat first; ``TTSSpeakFrame`` is spoken as its own utterance.

Frames out (one LLM response = one audio context): ``TTSStartedFrame`` once, then per chunk an
``AggregatedTextFrame`` announcing it (``will_be_spoken``, pushed *before* its audio),
``TTSAudioRawFrame`` per Piper sentence, and a ``TTSTextFrame`` with the chunk's text right after
its audio; ``TTSStoppedFrame`` once the response ends, then ``LLMFullResponseEndFrame``.

Interruption: pipecat cancels the task running ``run_tts`` and drops the audio not yet pushed.
The Piper call already running in its worker thread finishes its sentence, but nothing more is
pushed and no further sentence is synthesized. Piper's espeak phonemizer is one process-wide
instance that is not thread-safe, so all synthesis steps of all calls are serialized by a lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    AggregatedTextFrame,
    EagerTranscriptionFrame,
    ErrorFrame,
    Frame,
    InterimTranscriptionFrame,
    LLMTextFrame,
    StartFrame,
    TextFrame,
    TranscriptionFrame,
    TranslationFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TextAggregationMode, TTSService
from pipecat.utils.text.base_text_aggregator import TextType
from pipecat.utils.tracing.service_decorators import traced_tts
from piper import AudioChunk, PiperVoice, SynthesisConfig

from voiceagent.services.local.piper_phrases import PreparedPhrases

# TextFrame kinds that are not agent speech chunks: LLM tokens (aggregated by pipecat), already
# aggregated text, and what the caller said.
_NOT_A_CHUNK = (
    LLMTextFrame,
    AggregatedTextFrame,
    TranscriptionFrame,
    InterimTranscriptionFrame,
    EagerTranscriptionFrame,
    TranslationFrame,
)

_SYNTH_LOCK = threading.Lock()
_CACHE_LOCK = threading.Lock()
_VOICES: dict[tuple[Path, Path], concurrent.futures.Future[PiperVoice]] = {}


def _load_voice(model_path: Path, config_path: Path) -> PiperVoice:
    began = time.monotonic()
    voice = PiperVoice.load(str(model_path), config_path=str(config_path))
    with _SYNTH_LOCK:  # the first ONNX run is ~3x slower: pay it here, not in the first turn
        for _ in voice.synthesize("Hello."):
            pass
    logger.info(
        f"loaded Piper voice {model_path.name} ({voice.config.sample_rate} Hz) "
        f"in {time.monotonic() - began:.2f} s"
    )
    return voice


def load_piper_voice(model_path: Path, config_path: Path) -> concurrent.futures.Future[PiperVoice]:
    """Start loading a Piper voice in a worker thread, once per process per file pair.

    Returns a future shared by every caller (all calls of a process share one loaded voice).
    A failed load is forgotten so that a later call can retry.
    """
    key = (Path(model_path).resolve(), Path(config_path).resolve())
    with _CACHE_LOCK:
        future = _VOICES.get(key)
        if future is None or (future.done() and future.exception() is not None):
            future = concurrent.futures.Future()
            _VOICES[key] = future
            threading.Thread(
                target=_run_load, args=(future, *key), name="piper-voice-load", daemon=True
            ).start()
        return future


def _run_load(future: concurrent.futures.Future[PiperVoice], model: Path, config: Path) -> None:
    try:
        future.set_result(_load_voice(model, config))
    except Exception as e:  # reported to whoever awaits the future
        future.set_exception(e)


def next_sentence(chunks: Iterator[AudioChunk]) -> AudioChunk | None:
    """Synthesize Piper's next sentence (runs in a worker thread)."""
    with _SYNTH_LOCK:
        return next(chunks, None)


class LocalPiperTTSService(TTSService):
    """Offline Piper TTS; see the module docstring for the frames it takes and pushes."""

    def __init__(
        self,
        *,
        model_path: Path,
        config_path: Path,
        voice: PiperVoice | None = None,
        synthesis: SynthesisConfig | None = None,
        phrases: PreparedPhrases | None = None,
        **kwargs: Any,
    ) -> None:
        """Create the service; the voice loads in a worker thread, never on the event loop.

        Args:
            model_path: The voice's ``.onnx`` file (``weights.resolve_piper_voice``).
            config_path: The voice's ``.onnx.json`` file.
            voice: An already loaded voice to share (skips loading).
            synthesis: Piper synthesis options (speaking rate via ``length_scale``, volume).
            phrases: Phrases synthesized in advance (the greetings), played without synthesis.
            **kwargs: ``TTSService`` arguments (e.g. ``sample_rate``; by default the pipeline's
                output rate).

        Raises:
            FileNotFoundError: A voice file does not exist.
        """
        self.model_path = Path(model_path)
        self.config_path = Path(config_path)
        for path in (self.model_path, self.config_path):
            if not path.is_file():
                logger.error(f"Piper voice file not found: {path}")
                raise FileNotFoundError(f"Piper voice file not found: {path}")
        kwargs.setdefault("push_start_frame", True)
        kwargs.setdefault("push_stop_frames", True)
        kwargs.setdefault("text_aggregation_mode", TextAggregationMode.SENTENCE)
        kwargs.setdefault(
            "settings", TTSSettings(model=None, voice=self.model_path.stem, language=None)
        )
        super().__init__(**kwargs)
        self._synthesis = synthesis
        self._phrases = phrases
        self._voice: PiperVoice | None = voice
        self._voice_future = (
            None if voice is not None else load_piper_voice(self.model_path, self.config_path)
        )

    def can_generate_metrics(self) -> bool:
        """Piper reports TTFB and usage metrics."""
        return True

    async def start(self, frame: StartFrame) -> None:
        """Wait for the voice (loading in its thread since construction) before speaking."""
        await super().start(frame)
        await self._ensure_voice()

    async def _ensure_voice(self) -> PiperVoice | None:
        if self._voice is None and self._voice_future is not None:
            try:
                self._voice = await asyncio.wrap_future(self._voice_future)
            except Exception as e:
                self._voice_future = None
                await self.push_error(
                    error_msg=f"cannot load Piper voice {self.model_path}: {e}",
                    exception=e,
                    force_treat_as_permanent=True,
                )
        return self._voice

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Speak plain ``TextFrame`` chunks as they are; everything else as pipecat's TTS.

        Inside an LLM response a chunk joins the response's audio context; outside one it is
        spoken as its own utterance (like a ``TTSSpeakFrame``), so it is stopped at once
        instead of after pipecat's 3 s idle timeout.
        """
        if (
            isinstance(frame, TextFrame)
            and not isinstance(frame, _NOT_A_CHUNK)
            and direction == FrameDirection.DOWNSTREAM
            and not frame.skip_tts
        ):
            chunk: Frame
            if self._turn_context_id is not None:
                chunk = AggregatedTextFrame(frame.text, TextType.SENTENCE)
            else:
                chunk = TTSSpeakFrame(frame.text)
            chunk.pts = frame.pts
            await super().process_frame(chunk, direction)
            return
        await super().process_frame(frame, direction)

    @traced_tts
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Synthesize ``text``, yielding audio as Piper finishes each of its sentences."""
        voice = await self._ensure_voice()
        if voice is None:
            yield ErrorFrame(error=f"Piper voice {self.model_path.name} is not loaded")
            return
        try:
            await self.start_tts_usage_metrics(text)
            async for frame in self._stream_audio_frames_from_iterator(
                self._piper_audio(voice, text),
                in_sample_rate=voice.config.sample_rate,
                context_id=context_id,
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as e:
            logger.error(f"{self}: Piper failed to synthesize {text!r}: {e}")
            yield ErrorFrame(error=f"Piper synthesis failed: {e}")
        finally:
            await self.stop_ttfb_metrics()

    async def _piper_audio(self, voice: PiperVoice, text: str) -> AsyncIterator[bytes]:
        """PCM16 of each Piper sentence, synthesized one at a time in a worker thread."""
        phrases = self._phrases
        prepared = phrases.get(text) if phrases is not None and phrases.voice is voice else None
        if prepared is not None:
            for audio in prepared:
                yield audio
            return
        chunks = iter(voice.synthesize(text, syn_config=self._synthesis))
        while True:
            chunk = await asyncio.to_thread(next_sentence, chunks)
            if chunk is None:
                return
            yield chunk.audio_int16_bytes

    async def _update_settings(self, delta: TTSSettings) -> dict[str, Any]:
        """Settings are stored; a different voice needs a new service."""
        changed = await super()._update_settings(delta)
        if changed:
            self._warn_unhandled_updated_settings(changed)
        return changed
