"""Streaming speech-to-text on the local CPU: Whisper re-decoded on a cadence for partials.

Whisper has no native partial results. ``WhisperStreamingSTT`` keeps the caller's utterance
(from pipecat's VAD start, plus a pre-roll of the audio before it) and, while the caller
speaks, re-decodes the growing window every ``partial_interval_s`` in a worker thread,
pushing each hypothesis as an ``InterimTranscriptionFrame``. A tick that finds a decode
still running is skipped, never queued. At VAD stop the whole utterance is decoded once
more and pushed as a ``TranscriptionFrame(finalized=True)``. Each transcript carries the audio
it covers (``AudioSpan``: from the utterance's VAD start to the end of the audio decoded, on the
call clock), so the turn engine knows when it has heard the whole utterance.

Frames in: ``InputAudioRawFrame`` (16 kHz PCM16 mono), ``VADUserStartedSpeakingFrame``,
``VADUserStoppedSpeakingFrame``. Everything but the caller's audio is forwarded (nothing after
the STT needs it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    StartFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from voiceagent.clock import DEFAULT_CLOCK, Clock, TimerHandle
from voiceagent.frames import AudioSpan, set_audio_span
from voiceagent.services.local.whisper_transcriber import (  # noqa: F401 (re-exported)
    NO_SPEECH_MAX,
    WhisperTranscriber,
    drop_run_on_repeat,
    load_transcriber,
)
from voiceagent.settings import PIPELINE_SAMPLE_RATE, LocalModelSettings

CALLER_ID = "caller"
_BYTES_PER_S = PIPELINE_SAMPLE_RATE * 2
_END_FLUSH_TIMEOUT_S = 5.0


class WhisperStreamingSTT(FrameProcessor):
    """Pipecat processor: caller audio + VAD frames in, partial and final transcripts out.

    Attributes:
        partials_skipped: Ticks skipped because a decode was still running (or the model
            was still loading).
        last_partial_decode_s: Wall time of the latest partial decode.
        last_final_latency_s: Clock time from VAD stop to the latest final being ready.
    """

    def __init__(
        self,
        *,
        transcriber: WhisperTranscriber | None = None,
        settings: LocalModelSettings | None = None,
        clock: Clock = DEFAULT_CLOCK,
        partial_interval_s: float | None = None,
        preroll_s: float = 0.5,
        max_window_s: float = 20.0,
        **kwargs: Any,
    ) -> None:
        """Create the STT.

        Args:
            transcriber: A loaded model to share; when None one is loaded (off the event loop)
                from ``settings`` at ``StartFrame``.
            settings: Local model settings (weights, threads, partial cadence).
            clock: Timer source for the partial cadence.
            partial_interval_s: Seconds between partial decodes (default from settings).
            preroll_s: Audio kept from before VAD start (VAD reports start late).
            max_window_s: Longest window decoded at once (at least 4 s); a longer monologue is
                sealed in pieces, cut at a quiet spot, whose text prefixes later hypotheses.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._settings = settings or LocalModelSettings()
        self._transcriber = transcriber
        self._clock = clock
        interval = (
            self._settings.partial_interval_s if partial_interval_s is None else partial_interval_s
        )
        if interval <= 0:
            raise ValueError(f"partial_interval_s must be > 0, got {interval}")
        self._interval = interval
        self._preroll_bytes = int(preroll_s * PIPELINE_SAMPLE_RATE) * 2
        self._max_bytes = max(int(max_window_s * PIPELINE_SAMPLE_RATE) * 2, 4 * _BYTES_PER_S)
        self._audio = bytearray()
        self._span_start = 0.0  # call-clock start of the utterance's audio span
        self._last_end = float("-inf")  # where the previous utterance's final span ended
        self._speaking = False
        self._utterance = 0
        self._sealed: list[str] = []
        self._seals: list[asyncio.Task] = []
        self._busy = 0
        self._lane = asyncio.Lock()
        self._ready = asyncio.Event()
        self._tick: TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._finals: set[asyncio.Task] = set()
        self._load_started = False
        self._bad_format_logged = False
        self.partials_skipped = 0
        self.last_partial_decode_s: float | None = None
        self.last_final_latency_s: float | None = None
        if transcriber is not None:
            self._ready.set()

    @property
    def ready(self) -> bool:
        """Whether a model is loaded and decodes can run."""
        return self._transcriber is not None

    @property
    def decoding(self) -> bool:
        """Whether a decode is scheduled or running (partial ticks are skipped meanwhile)."""
        return self._busy > 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Collect caller audio (it stops here), follow VAD, forward every other frame."""
        await super().process_frame(frame, direction)
        downstream = direction == FrameDirection.DOWNSTREAM
        if isinstance(frame, InputAudioRawFrame):
            if downstream:
                self._append_audio(frame)
                return
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            if downstream:
                self._start_utterance()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            if downstream:
                self._end_utterance()
        elif isinstance(frame, StartFrame):
            self._start_loading()
        elif isinstance(frame, EndFrame):
            await self._flush()
        elif isinstance(frame, CancelFrame):
            await self._stop()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Cancel timers and any decode task still running."""
        await self._stop()
        await super().cleanup()

    # --- per-frame path --------------------------------------------------------------------

    def _append_audio(self, frame: InputAudioRawFrame) -> None:
        if frame.sample_rate != PIPELINE_SAMPLE_RATE or frame.num_channels != 1:
            if not self._bad_format_logged:
                self._bad_format_logged = True
                logger.error(
                    f"{self}: ignoring caller audio at {frame.sample_rate} Hz x "
                    f"{frame.num_channels} ch; expected {PIPELINE_SAMPLE_RATE} Hz mono PCM16"
                )
            return
        audio = self._audio
        audio += frame.audio
        if self._speaking:
            if len(audio) >= self._max_bytes:
                self._seal_window()
        elif len(audio) > self._preroll_bytes:
            del audio[: len(audio) - self._preroll_bytes]

    # --- utterance lifecycle -----------------------------------------------------------------

    def _start_utterance(self) -> None:
        if self._speaking:
            return
        self._speaking = True
        self._utterance += 1
        self._span_start = max(self._clock.now(), self._last_end)
        self._sealed = []
        self._seals = []
        self._tick = self._clock.call_later(self._interval, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        if not self._speaking:
            return
        self._tick = self._clock.call_later(self._interval, self._on_tick)
        if self._busy or self._transcriber is None:
            self.partials_skipped += 1
            return
        self._busy += 1
        span = AudioSpan(self._span_start, self._clock.now())
        self._spawn(self._partial(self._utterance, bytes(self._audio), self._sealed, span))

    def _end_utterance(self) -> None:
        if not self._speaking:
            return
        self._speaking = False
        self._cancel_tick()
        audio = bytes(self._audio)
        self._audio.clear()
        self._busy += 1
        now = self._clock.now()
        span = AudioSpan(self._span_start, max(now, self._span_start))
        self._last_end = span.end
        task = self._spawn(self._final(audio, self._sealed, self._seals, now, span))
        self._finals.add(task)
        task.add_done_callback(self._finals.discard)

    def _seal_window(self) -> None:
        """Cut a monologue's window at its quietest point near the cap and decode the head."""
        cut = _quiet_cut(self._audio, search_bytes=2 * _BYTES_PER_S)
        head = bytes(self._audio[:cut])
        del self._audio[:cut]
        self._sealed.append("")
        self._busy += 1
        index = len(self._sealed) - 1
        self._seals.append(self._spawn(self._seal(head, self._sealed, index)))

    # --- decodes (worker thread; one at a time) ----------------------------------------------

    async def _decode(self, audio: bytes) -> str:
        await self._ready.wait()
        transcriber = self._transcriber
        if transcriber is None:
            return ""
        async with self._lane:
            return await asyncio.to_thread(transcriber.transcribe, audio)

    async def _partial(
        self, utterance: int, audio: bytes, sealed: list[str], span: AudioSpan
    ) -> None:
        started = time.perf_counter()
        try:
            text = await self._decode(audio)
        except Exception as e:
            await self._report_decode_error("partial", e)
            return
        finally:
            self._busy -= 1
        self.last_partial_decode_s = time.perf_counter() - started
        if utterance != self._utterance or not self._speaking:
            return  # the utterance ended meanwhile: its final supersedes this partial
        text = _join([*sealed, text])
        if text:
            frame = InterimTranscriptionFrame(
                text=text, user_id=CALLER_ID, timestamp=time_now_iso8601()
            )
            set_audio_span(frame, span)
            await self.push_frame(frame)

    async def _seal(self, audio: bytes, sealed: list[str], index: int) -> None:
        try:
            sealed[index] = await self._decode(audio)
        except Exception as e:
            await self._report_decode_error("sealed window", e)
        finally:
            self._busy -= 1

    async def _final(
        self,
        audio: bytes,
        sealed: list[str],
        seals: list[asyncio.Task],
        stopped_at: float,
        span: AudioSpan,
    ) -> None:
        try:
            if seals:
                await asyncio.gather(*seals, return_exceptions=True)
            text = await self._decode(audio)
        except Exception as e:
            await self._report_decode_error("final", e)
            return
        finally:
            self._busy -= 1
        self.last_final_latency_s = self._clock.now() - stopped_at
        text = _join([*sealed, text])
        if not text:
            logger.debug(f"{self}: utterance had no words")
            return
        frame = TranscriptionFrame(
            text=text,
            user_id=CALLER_ID,
            timestamp=time_now_iso8601(),
            language=Language.EN,
            finalized=True,
        )
        set_audio_span(frame, span)
        await self.push_frame(frame)

    async def _report_decode_error(self, what: str, error: Exception) -> None:
        logger.error(f"{self}: Whisper {what} decode failed: {error!r}")
        await self.push_error(f"Whisper {what} decode failed: {error}", exception=error)

    # --- model loading and shutdown ----------------------------------------------------------

    def _start_loading(self) -> None:
        if self._transcriber is not None or self._load_started:
            return
        self._load_started = True
        self._spawn(self._load())

    async def _load(self) -> None:
        try:
            self._transcriber = await asyncio.to_thread(load_transcriber, self._settings)
        except Exception as e:
            logger.error(f"{self}: local Whisper STT unavailable: {e}")
            await self.push_error(
                f"local Whisper STT could not load: {e}", exception=e, force_treat_as_permanent=True
            )
        finally:
            self._ready.set()

    async def _flush(self) -> None:
        """At the end of a call: stop partials and let finals already under way arrive."""
        self._speaking = False
        self._cancel_tick()
        if self._finals:
            _done, pending = await asyncio.wait(set(self._finals), timeout=_END_FLUSH_TIMEOUT_S)
            if pending:
                logger.warning(f"{self}: dropping {len(pending)} final(s) still decoding at end")
        await self._stop()

    async def _stop(self) -> None:
        self._speaking = False
        self._cancel_tick()
        for task in list(self._tasks):
            await self.cancel_task(task)
        self._tasks.clear()

    def _cancel_tick(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task:
        task = self.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _join(texts: list[str]) -> str:
    return " ".join(t for t in texts if t)


def _quiet_cut(audio: bytearray, *, search_bytes: int) -> int:
    """Byte offset of the quietest 20 ms in the last ``search_bytes`` of ``audio`` (even)."""
    block = _BYTES_PER_S // 50
    start = max(0, len(audio) - search_bytes) // block * block
    blocks = (len(audio) - start) // block
    if blocks < 1:
        return len(audio) // 2 * 2
    view = np.frombuffer(audio, dtype=np.int16, offset=start, count=blocks * block // 2)
    energy = np.square(view.reshape(blocks, block // 2).astype(np.float32)).sum(axis=1)
    quietest = int(np.argmin(energy))
    del view
    return start + quietest * block + block // 2 // 2 * 2
