"""The told-the-script oracle STT (``bench/turns.py --stt scripted``), deterministic timing.

TOLD THE SCRIPT, NOT RECOGNITION: every figure made with it must say so. For turn-taking on
real transcripts use the recognizing server, ``bench/fakes/deepgram_live``.

It does not recognize speech: it is told the script (each caller line's text and audio
duration, in order) and hears *when* the caller speaks, like a cloud STT that gets every audio
frame: a line starts at the first non-silent caller frame after the previous line ended (the
emulator sends digital silence between lines). Words are revealed in proportion to elapsed
speech time (a word is heard once the audio up to its end, by character share, has played).
While the caller speaks (the line's audio is playing, or pipecat's VAD says so) an
``InterimTranscriptionFrame`` of the open segment goes out every ``partial_interval_s``. Each
VAD stop finalizes the segment: a ``TranscriptionFrame(finalized=True)`` ``final_delay_s``
later (pipecat's Deepgram service sends ``Finalize`` on VAD stop). A line the VAD never
closes is finalized by endpointing, ``endpointing_s`` after its audio ended. Everything is
forwarded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

CALLER_ID = "caller"
VOICED_RMS = 30.0
"""PCM16 RMS above which a caller frame is sound (the emulator's silence decodes to 0)."""
END_TOLERANCE = 0.85
"""A VAD stop past this share of the line's audio finalizes the whole line."""
ENDPOINTING_S = 0.3
"""Silence after a line's audio that ends it when the VAD does not (Deepgram endpointing)."""


@dataclass
class _Line:
    text: str
    duration_s: float
    onset: float
    words: list[str] = field(default_factory=list)
    word_ends_s: list[float] = field(default_factory=list)
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

    def elapsed(self, now: float) -> float:
        return now - self.onset

    def heard(self, now: float, *, stopped: bool = False) -> int:
        """Words spoken by ``now`` (all of them at a VAD stop near the end of the audio)."""
        elapsed = self.elapsed(now)
        if stopped and elapsed >= self.duration_s * END_TOLERANCE:
            return len(self.words)
        n = 0
        while n < len(self.words) and self.word_ends_s[n] <= elapsed + 1e-9:
            n += 1
        return n

    def take_segment(self, upto: int) -> str:
        """Words from the last final up to ``upto``; they are final from now on."""
        upto = max(upto, self.finalized)
        text = " ".join(self.words[self.finalized : upto])
        self.finalized = upto
        return text


@dataclass
class STTStats:
    """What the fake STT did during one call."""

    interims: int = 0
    finals: int = 0
    endpointed: int = 0
    lines_started: int = 0
    unscripted_sound: int = 0


class FakeCloudSTT(FrameProcessor):
    """Scripted streaming STT: partials every 100 ms while speaking, a final after VAD stop."""

    def __init__(
        self,
        lines: list[tuple[str, float]],
        *,
        partial_interval_s: float = 0.1,
        final_delay_s: float = 0.15,
        endpointing_s: float = ENDPOINTING_S,
        **kwargs,
    ) -> None:
        """Create the STT for one call.

        Args:
            lines: ``(text, audio duration in seconds)`` of each caller line, in script order.
            partial_interval_s: Interim cadence while the caller speaks.
            final_delay_s: Delay of a segment's final after the VAD stop.
            endpointing_s: Silence after a line's audio that finalizes it without a VAD stop.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._script: deque[tuple[str, float]] = deque(lines)
        self._line: _Line | None = None
        self._interval = partial_interval_s
        self._final_delay = final_delay_s
        self._endpointing = endpointing_s
        self._vad_speaking = False
        self._ticker: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.stats = STTStats()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Listen for the caller's sound, follow the VAD; forward every frame."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, InputAudioRawFrame):
            self._on_audio(frame)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._vad_speaking = True
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._vad_speaking = False
            self._finalize(stopped_at=time.monotonic() - frame.stop_secs)
        elif isinstance(frame, EndFrame | CancelFrame):
            await self._stop_tasks()

    async def cleanup(self) -> None:
        """Cancel the interim ticker and pending finals."""
        await self._stop_tasks()
        await super().cleanup()

    # -- hearing -----------------------------------------------------------------------------

    def _on_audio(self, frame: InputAudioRawFrame) -> None:
        line = self._line
        now = time.monotonic()
        if line is not None and line.elapsed(now) <= line.duration_s + 0.1:
            return  # the current line is still being spoken: nothing to detect
        samples = np.frombuffer(frame.audio, dtype="<i2")
        if not samples.size or np.sqrt(np.mean(np.square(samples, dtype=np.float64))) < VOICED_RMS:
            return
        if line is not None and not line.complete:
            self._send_final(line.take_segment(len(line.words)))  # its audio ended long ago
        if not self._script:
            self.stats.unscripted_sound += 1
            return
        text, duration = self._script.popleft()
        onset = now - len(samples) / max(frame.sample_rate, 1)
        self._line = _Line(text, duration, onset)
        self.stats.lines_started += 1
        if self._ticker is None or self._ticker.done():
            self._ticker = self._spawn(self._tick())

    def _finalize(self, stopped_at: float) -> None:
        line = self._line
        if line is None or line.complete:
            return
        self._send_final(line.take_segment(line.heard(stopped_at, stopped=True)))

    # -- output --------------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Interims of the open segment while the caller speaks; endpointing when VAD is late."""
        while True:
            await asyncio.sleep(self._interval)
            line, now = self._line, time.monotonic()
            if line is None or line.complete:
                continue
            elapsed = line.elapsed(now)
            if self._vad_speaking or elapsed <= line.duration_s:
                text = " ".join(line.words[line.finalized : line.heard(now)])
                if text:
                    self.stats.interims += 1
                    await self.push_frame(
                        InterimTranscriptionFrame(
                            text=text, user_id=CALLER_ID, timestamp=time_now_iso8601()
                        )
                    )
            elif elapsed >= line.duration_s + self._endpointing:
                self.stats.endpointed += 1
                logger.debug(f"{self}: endpointing {line.text!r} (no VAD stop)")
                self._send_final(line.take_segment(len(line.words)))

    def _send_final(self, text: str) -> None:
        if text:
            self._spawn(self._final_after_delay(text))

    async def _final_after_delay(self, text: str) -> None:
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
        self._ticker = None
        for task in list(self._tasks):
            await self.cancel_task(task)
        self._tasks.clear()
