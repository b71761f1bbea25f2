"""A Deepgram-shaped streaming STT with deterministic timing, for benchmarks.

It does not listen to the audio's content: it is told the script (each caller line's text and
audio duration, in order) and follows pipecat's VAD for *when* the caller speaks. Words are
revealed in proportion to elapsed speech time (a word counts as heard once the audio up to its
end, by character share, has been spoken); while the caller speaks an
``InterimTranscriptionFrame`` of the open segment goes out every ``partial_interval_s``; a
``TranscriptionFrame(finalized=True)`` of the segment follows each VAD stop after
``final_delay_s``. A line the VAD splits into several segments gets one final per segment,
like Deepgram. Every frame is forwarded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

CALLER_ID = "caller"
END_TOLERANCE = 0.85
"""At a VAD stop past this share of the line's audio, the whole line counts as spoken."""
STALE_AFTER_S = 1.0
"""A line unfinished this long after its audio ended is abandoned (the VAD missed its end)."""


@dataclass
class _Line:
    text: str
    duration_s: float
    words: list[str] = field(default_factory=list)
    word_ends_s: list[float] = field(default_factory=list)
    onset: float | None = None
    finalized: int = 0  # words already sent in finals

    def __post_init__(self) -> None:
        self.words = self.text.split()
        total = sum(len(w) for w in self.words) or 1
        spoken = 0
        for word in self.words:
            spoken += len(word)
            self.word_ends_s.append(self.duration_s * spoken / total)

    @property
    def complete(self) -> bool:
        return self.finalized >= len(self.words)

    def heard(self, elapsed_s: float, *, stopped: bool = False) -> int:
        """Words spoken ``elapsed_s`` after the line's onset (all of them once a VAD stop
        comes near the end of the line's audio)."""
        if stopped and elapsed_s >= self.duration_s * END_TOLERANCE:
            return len(self.words)
        n = 0
        while n < len(self.words) and self.word_ends_s[n] <= elapsed_s + 1e-9:
            n += 1
        return n


@dataclass
class STTStats:
    """What the fake STT did during one call."""

    interims: int = 0
    finals: int = 0
    lines_started: int = 0
    lines_abandoned: int = 0
    unscripted_speech: int = 0


class FakeCloudSTT(FrameProcessor):
    """Scripted streaming STT: partials every 100 ms while speaking, a final after VAD stop."""

    def __init__(
        self,
        lines: list[tuple[str, float]],
        *,
        partial_interval_s: float = 0.1,
        final_delay_s: float = 0.15,
        **kwargs,
    ) -> None:
        """Create the STT for one call.

        Args:
            lines: ``(text, audio duration in seconds)`` of each caller line, in script order.
            partial_interval_s: Interim cadence while the caller speaks.
            final_delay_s: Delay of a segment's final after the VAD stop.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._pending: deque[_Line] = deque(_Line(t, d) for t, d in lines)
        self._line: _Line | None = None
        self._interval = partial_interval_s
        self._final_delay = final_delay_s
        self._speaking = False
        self._ticker: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.stats = STTStats()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Follow the VAD; forward every frame."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._on_started(time.monotonic() - frame.start_secs)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            await self._on_stopped(time.monotonic() - frame.stop_secs)
        elif isinstance(frame, EndFrame | CancelFrame):
            await self._stop_tasks()

    async def cleanup(self) -> None:
        """Cancel the interim ticker and pending finals."""
        await self._stop_tasks()
        await super().cleanup()

    # -- VAD ---------------------------------------------------------------------------------

    def _on_started(self, onset: float) -> None:
        if self._speaking:
            return
        self._speaking = True
        line = self._line
        if line is not None and not line.complete and line.onset is not None:
            if onset - line.onset > line.duration_s + STALE_AFTER_S:
                logger.warning(f"{self}: abandoning unfinished line {line.text!r}")
                self.stats.lines_abandoned += 1
                line = None
        if line is None or line.complete:
            line = self._pending.popleft() if self._pending else None
            if line is not None:
                line.onset = onset
                self.stats.lines_started += 1
            else:
                self.stats.unscripted_speech += 1
        self._line = line
        if line is not None:
            self._ticker = self._spawn(self._tick_partials(line))

    async def _on_stopped(self, speech_end: float) -> None:
        if not self._speaking:
            return
        self._speaking = False
        if self._ticker is not None:
            await self.cancel_task(self._ticker)
            self._ticker = None
        line = self._line
        if line is None or line.onset is None:
            return
        upto = max(line.finalized, line.heard(speech_end - line.onset, stopped=True))
        text = " ".join(line.words[line.finalized : upto])
        line.finalized = upto
        if text:
            self._spawn(self._send_final(text))

    # -- output --------------------------------------------------------------------------------

    async def _tick_partials(self, line: _Line) -> None:
        assert line.onset is not None
        while True:
            await asyncio.sleep(self._interval)
            upto = line.heard(time.monotonic() - line.onset)
            text = " ".join(line.words[line.finalized : upto])
            if text:
                self.stats.interims += 1
                await self.push_frame(
                    InterimTranscriptionFrame(
                        text=text, user_id=CALLER_ID, timestamp=time_now_iso8601()
                    )
                )

    async def _send_final(self, text: str) -> None:
        await asyncio.sleep(self._final_delay)
        self.stats.finals += 1
        await self.push_frame(
            TranscriptionFrame(
                text=text,
                user_id=CALLER_ID,
                timestamp=time_now_iso8601(),
                language=Language.EN,
                finalized=True,
            )
        )

    def _spawn(self, coroutine) -> asyncio.Task:
        task = self.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _stop_tasks(self) -> None:
        self._speaking = False
        self._ticker = None
        for task in list(self._tasks):
            await self.cancel_task(task)
        self._tasks.clear()
