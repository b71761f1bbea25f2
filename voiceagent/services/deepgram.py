"""Deepgram streaming STT and TTS: pipecat's services, configured for a phone call.

STT is pipecat's ``DeepgramSTTService`` on ``/v1/listen`` with what we send (PCM16 mono at
the pipeline rate: ``encoding=linear16``, ``sample_rate=16000``) and what turn-taking needs:
``model=nova-3``, ``interim_results``, ``endpointing``, ``utterance_end_ms``, ``vad_events``,
``smart_format``, ``punctuate``. pipecat sends ``KeepAlive`` every 5 s, ``Finalize`` at VAD
stop and ``CloseStream`` at the end; it maps interim ``Results`` to
``InterimTranscriptionFrame`` and finals (``is_final``) to ``TranscriptionFrame`` (each final
closes one STT segment, which the StabilityCommitRouter joins). A refused handshake (401 bad
key, 402 no credit, 429 rate limit) is an ``ErrorFrame`` naming the reason; the service stops
retrying and marks itself unusable, and the call goes on (a ``FallbackSwitcher`` moves on).
pipecat connects from ``setup`` and waits there until Deepgram answers or its retries give up
(seconds for a refused or silent host), which holds every stage of the call: here the
connection is made in the background, so a Deepgram that cannot be reached never delays the
greeting or the fallback.

TTS is pipecat's ``DeepgramTTSService`` on ``/v1/speak`` (``Speak`` per chunk, ``Flush`` at
the end of a reply, ``Clear`` on interruption, ``Close``), with one change: Deepgram does not
delimit the audio of each ``Speak``, so pipecat queues a chunk's ``TTSTextFrame`` *before*
its audio arrives. TwilioOutput counts the audio before a ``TTSTextFrame`` as that text's
segment, so ``VoiceDeepgramTTSService`` holds a reply's text frames until its ``Flushed``: the
reply is one segment, placed after its audio.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, TTSStoppedFrame, TTSTextFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.deepgram.tts import DeepgramTTSService

from voiceagent.settings import PIPELINE_SAMPLE_RATE, CloudSettings

_REFUSALS = {
    401: "the API key was rejected (check DEEPGRAM_API_KEY)",
    402: "the account has run out of credit (payment required)",
    429: "too many requests or concurrent streams (rate limited)",
}


def _require_key(cloud: CloudSettings, stage: str) -> str:
    if not cloud.deepgram_api_key:
        logger.error(f"Deepgram {stage} selected but no DEEPGRAM_API_KEY is configured")
        raise ValueError(f"Deepgram {stage} needs DEEPGRAM_API_KEY")
    return cloud.deepgram_api_key


class VoiceDeepgramSTTService(DeepgramSTTService):
    """pipecat's Deepgram STT, connecting in the background; refusals say what they mean."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._in_setup = False
        self._background_connect: asyncio.Task | None = None

    async def setup(self, setup: FrameProcessorSetup) -> None:
        """Set up as pipecat does, but without waiting for the socket (see ``_connect``)."""
        self._in_setup = True
        try:
            await super().setup(setup)
        finally:
            self._in_setup = False

    async def _connect(self) -> None:
        """At setup, start pipecat's connection attempt and return at once.

        Until the socket is up, audio is not sent (pipecat's ``run_stt`` skips it: the caller
        is hearing the greeting then); errors reach the fallback as they happen. A reconnect
        later waits as pipecat does.
        """
        if not self._in_setup:
            await super()._connect()
            return
        self._background_connect = self.create_task(
            super()._connect(), name=f"{self}::background_connect"
        )

    async def cleanup(self) -> None:
        """Stop a connection attempt still running, then clean up as pipecat does."""
        task, self._background_connect = self._background_connect, None
        if task is not None and not task.done():
            await self.cancel_task(task)
        await super().cleanup()

    async def push_error(self, error_msg: str, exception: Exception | None = None, **kwargs):
        """Name the meaning of a 401/402/429 handshake refusal in the error (and its log line)."""
        status = getattr(exception, "status_code", None)
        if status in _REFUSALS:
            error_msg = f"Deepgram STT refused the connection: HTTP {status}, {_REFUSALS[status]}"
        await super().push_error(error_msg, exception, **kwargs)


class VoiceDeepgramTTSService(DeepgramTTSService):
    """pipecat's Deepgram TTS with each reply's ``TTSTextFrame`` s placed after its audio."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._unvoiced: dict[str, list[Frame]] = {}

    async def append_to_audio_context(self, context_id: str, frame: Frame) -> None:
        """Hold a context's text frames until its audio is complete (``Flushed``)."""
        if isinstance(frame, TTSTextFrame):
            self._unvoiced.setdefault(context_id, []).append(frame)
            return
        if isinstance(frame, TTSStoppedFrame):
            for text in self._unvoiced.pop(context_id, []):
                await super().append_to_audio_context(context_id, text)
        await super().append_to_audio_context(context_id, frame)

    async def on_audio_context_interrupted(self, context_id: str) -> None:
        """An interrupted reply's text was not heard: forget it."""
        self._unvoiced.pop(context_id, None)
        await super().on_audio_context_interrupted(context_id)

    async def remove_audio_context(self, context_id: str | None) -> None:
        """Forget the held text of a context that is gone."""
        if context_id is not None:
            self._unvoiced.pop(context_id, None)
        await super().remove_audio_context(context_id)


def create_deepgram_stt(
    cloud: CloudSettings, *, sample_rate: int = PIPELINE_SAMPLE_RATE
) -> VoiceDeepgramSTTService:
    """Deepgram live transcription of the caller (PCM16 mono at ``sample_rate``).

    Raises:
        ValueError: No Deepgram API key.
    """
    return VoiceDeepgramSTTService(
        api_key=_require_key(cloud, "STT"),
        base_url=cloud.deepgram_url,
        encoding="linear16",
        channels=1,
        sample_rate=sample_rate,
        settings=DeepgramSTTService.Settings(
            model=cloud.deepgram_stt_model,
            interim_results=True,
            endpointing=cloud.deepgram_endpointing_ms,
            utterance_end_ms=cloud.deepgram_utterance_end_ms,
            smart_format=True,
            punctuate=True,
            extra={"vad_events": True},
        ),
    )


def create_deepgram_tts(
    cloud: CloudSettings, *, sample_rate: int = PIPELINE_SAMPLE_RATE
) -> VoiceDeepgramTTSService:
    """Deepgram Aura streaming speech (PCM16 mono at ``sample_rate``).

    Raises:
        ValueError: No Deepgram API key.
    """
    return VoiceDeepgramTTSService(
        api_key=_require_key(cloud, "TTS"),
        base_url=cloud.deepgram_url,
        sample_rate=sample_rate,
        encoding="linear16",
        settings=DeepgramTTSService.Settings(voice=cloud.deepgram_tts_voice),
    )
