"""Deepgram streaming STT and TTS: pipecat's services, configured for a phone call.

STT is pipecat's ``DeepgramSTTService`` on ``/v1/listen`` with what we send (PCM16 mono at
the pipeline rate: ``encoding=linear16``, ``sample_rate=16000``) and what turn-taking needs:
``model=nova-3``, ``interim_results``, ``endpointing``, ``utterance_end_ms``, ``vad_events``,
``smart_format``, ``punctuate``; its socket offers no permessage-deflate (audio does not
compress: :mod:`voiceagent.services.deepgram_listen`). pipecat sends ``KeepAlive`` every
5 s, ``Finalize`` at VAD stop and ``CloseStream`` at the end; it maps interim ``Results`` to
``InterimTranscriptionFrame`` and finals (``is_final``) to ``TranscriptionFrame``. Each
transcript frame also carries the caller audio it covers (``voiceagent.frames.AudioSpan``:
the result window ``start``/``duration`` and every word's ``start``/``end``, moved from
Deepgram's stream time to the call clock), which the turn engine needs to tell a late final of
words already committed from new speech. A refused handshake (401 bad key, 402 no credit, 429
rate limit) is an ``ErrorFrame`` naming the reason; the service stops retrying and marks itself
unusable, and the call goes on (a ``FallbackSwitcher`` moves on).

pipecat connects from ``setup`` and waits there until Deepgram answers or its retries give up
(seconds for a refused or silent host), which holds every stage of the call: here the
connection is made in the background, so a Deepgram that cannot be reached never delays the
greeting or the fallback. Caller audio goes out in ``send_ms`` pieces (one WebSocket message
per 100 ms rather than per 20 ms frame: sending was the largest per-frame cost of a cloud call,
``bench/load.py``); what is held back is sent before the ``Finalize`` at each VAD stop, so the
final transcript is never later.

TTS is pipecat's ``DeepgramHttpTTSService``: one ``POST /v1/speak`` (``container=none``) per
clause-sized chunk from the ``SentenceAggregator``, on a shared keep-alive session. Each chunk's
audio is delimited by its response, so its ``TTSTextFrame`` follows its audio and the output
places a Twilio ``mark`` at every clause boundary: the heard-only context is right within a
clause. (Deepgram's WebSocket ``/v1/speak`` streams a reply's chunks as one undelimited audio
stream and limits ``Flush`` to 20 a minute, so marks there could only fall at the end of a
reply.) HTTP 402/429 refusals become an ``ErrorFrame``; a ``TTSFallback`` moves on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.deepgram.tts import DeepgramHttpTTSService

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.frames import AudioSpan, SpokenWord, set_audio_span
from voiceagent.services.deepgram_listen import (
    DEFAULT_URL,
    ListenClient,
    pipecat_builds_listen_clients,
)
from voiceagent.settings import PIPELINE_SAMPLE_RATE, CloudSettings

SEND_MS = 100
"""Caller audio per WebSocket message to Deepgram."""
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


class StreamClock:
    """Deepgram's stream time (audio seconds sent on one connection) → the call clock.

    Audio is sent as it arrives, so stream time ``t`` was on the wire ``sent_s - t`` seconds
    before the last send; a new connection starts its stream time at 0 again.
    """

    def __init__(self, clock: Clock, bytes_per_s: float) -> None:
        self._clock = clock
        self._bytes_per_s = bytes_per_s
        self._connection: object | None = None
        self._sent_s = 0.0
        self._sent_at: float | None = None

    def sent(self, connection: object | None, nbytes: int) -> None:
        """``nbytes`` of audio went out on ``connection`` just now."""
        if connection is None:
            return
        if connection is not self._connection:
            self._connection = connection
            self._sent_s = 0.0
        self._sent_s += nbytes / self._bytes_per_s
        self._sent_at = self._clock.now()

    def to_clock(self, stream_s: float) -> float | None:
        """The call-clock time of stream second ``stream_s`` (None before any audio)."""
        if self._sent_at is None:
            return None
        return self._sent_at - (self._sent_s - stream_s)


def result_span(result: Any, stream: StreamClock) -> AudioSpan | None:
    """The ``AudioSpan`` of a Deepgram ``Results`` message (None if it has no timing)."""
    start = getattr(result, "start", None)
    duration = getattr(result, "duration", None)
    begin = stream.to_clock(start) if isinstance(start, int | float) else None
    if begin is None or not isinstance(duration, int | float):
        return None
    words: list[SpokenWord] = []
    channel = getattr(result, "channel", None)
    alternatives = getattr(channel, "alternatives", None) or []
    for word in getattr(alternatives[0], "words", None) or [] if alternatives else []:
        w_start, w_end = stream.to_clock(word.start), stream.to_clock(word.end)
        if w_start is not None and w_end is not None:
            words.append(SpokenWord(word.punctuated_word or word.word, w_start, w_end))
    return AudioSpan(begin, begin + duration, tuple(words))


class VoiceDeepgramSTTService(DeepgramSTTService):
    """pipecat's Deepgram STT: audio spans, named refusals, a connection made in the background."""

    def __init__(
        self, *, clock: Clock = DEFAULT_CLOCK, send_ms: int = SEND_MS, **kwargs: Any
    ) -> None:
        # The same socket as the SDK's, without permessage-deflate, and without the SDK's
        # HTTP client (an SSL context per call): see deepgram_listen.
        with pipecat_builds_listen_clients():
            super().__init__(**kwargs)
        if not isinstance(self._client, ListenClient):  # a pipecat that builds it elsewhere
            self._client = ListenClient(kwargs.get("base_url") or DEFAULT_URL, kwargs["api_key"])
        self._stream = StreamClock(clock, bytes_per_s=2.0 * (self.sample_rate or 16000))
        self._stream_clock_source = clock
        self._in_setup = False
        self._background_connect: asyncio.Task | None = None
        self._send_ms = send_ms
        self._held = bytearray()
        self._flushing = False

    async def start(self, frame) -> None:
        """Start; the stream clock learns the negotiated sample rate."""
        await super().start(frame)
        self._stream = StreamClock(self._stream_clock_source, bytes_per_s=2.0 * self.sample_rate)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Send the audio (pipecat) and note how much of the stream it made."""
        batch = self._batched(audio)
        if batch is None:
            yield None
            return
        audio = batch
        connection = self._connection
        async for frame in super().run_stt(audio):
            yield frame
        if connection is not None and self._connection is connection:
            self._stream.sent(connection, len(audio))

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Attach the audio span to transcripts on their way out."""
        if isinstance(frame, InterimTranscriptionFrame | TranscriptionFrame):
            span = result_span(frame.result, self._stream) if frame.result is not None else None
            if span is not None:
                set_audio_span(frame, span)
        await super().push_frame(frame, direction)

    def _batched(self, audio: bytes) -> bytes | None:
        """The audio to send now: ``send_ms`` of it once gathered (or all, when flushing)."""
        held = self._held
        held += audio
        size = int(2 * (self.sample_rate or 16000) * self._send_ms / 1000)
        if not held or (len(held) < size and not self._flushing):
            return None
        out = bytes(held)
        held.clear()
        return out

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """At a VAD stop, send the audio held back before pipecat sends ``Finalize``."""
        if isinstance(frame, VADUserStoppedSpeakingFrame) and self._held:
            self._flushing = True
            try:
                async for _ in self.run_stt(b""):
                    pass
            finally:
                self._flushing = False
        await super().process_frame(frame, direction)

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


def create_deepgram_stt(
    cloud: CloudSettings, *, sample_rate: int = PIPELINE_SAMPLE_RATE, clock: Clock = DEFAULT_CLOCK
) -> VoiceDeepgramSTTService:
    """Deepgram live transcription of the caller (PCM16 mono at ``sample_rate``).

    Raises:
        ValueError: No Deepgram API key.
    """
    return VoiceDeepgramSTTService(
        clock=clock,
        audio_passthrough=False,  # nothing after the STT needs the caller's audio
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


def http_base_url(ws_url: str) -> str:
    """Deepgram's REST base for a configured (WebSocket) base URL: ``wss://h`` → ``https://h``."""
    if ws_url.startswith("wss://"):
        return "https://" + ws_url[len("wss://") :]
    if ws_url.startswith("ws://"):
        return "http://" + ws_url[len("ws://") :]
    return ws_url


def create_deepgram_tts(
    cloud: CloudSettings,
    session: aiohttp.ClientSession,
    *,
    sample_rate: int = PIPELINE_SAMPLE_RATE,
) -> DeepgramHttpTTSService:
    """Deepgram Aura speech, one request per chunk (PCM16 mono at ``sample_rate``).

    Args:
        cloud: Key, base URL and voice.
        session: The process's shared HTTP session (keep-alive to Deepgram).
        sample_rate: Audio rate asked of Deepgram.

    Raises:
        ValueError: No Deepgram API key.
    """
    return DeepgramHttpTTSService(
        api_key=_require_key(cloud, "TTS"),
        aiohttp_session=session,
        base_url=http_base_url(cloud.deepgram_url),
        sample_rate=sample_rate,
        encoding="linear16",
        settings=DeepgramHttpTTSService.Settings(voice=cloud.deepgram_tts_voice),
    )
