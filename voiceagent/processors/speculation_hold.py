"""Holds a speculative LLM reply until the caller's turn is committed (placed right after the LLM).

The StabilityCommitRouter may start the LLM before the caller has finished
(``SpeculationStartFrame``). Everything that generation produces — from its
``LLMFullResponseStartFrame`` through its ``LLMFullResponseEndFrame`` — is held here.
``SpeculationCommitFrame`` releases it in order and lets the rest stream live;
``SpeculationDiscardFrame`` drops it and keeps dropping the rest of that generation.

Ordering: the verdicts are SystemFrames and overtake queued data frames, so a verdict may
arrive before the generation it judges has produced anything, or before its last tokens.
Verdicts are therefore recorded per turn and applied when the generation's frames arrive.
To know which generation a start frame belongs to, the router pushes a
``GenerationTagFrame`` (a data frame) right before each ``LLMContextFrame``: the LLM
forwards it in order, so here it sits exactly between the previous generation and the one
it names. Without tags, speculations are matched to generations in order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from enum import Enum

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    ControlFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMThoughtEndFrame,
    LLMThoughtStartFrame,
    StopFrame,
    SystemFrame,
    TextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.frames import (
    SpeculationCommitFrame,
    SpeculationDiscardFrame,
    SpeculationStartFrame,
)

_MAX_TRACKED = 64


@dataclass
class GenerationTagFrame(ControlFrame):
    """The next LLM generation (in data order) answers router turn ``turn_id``.

    Pushed by the StabilityCommitRouter right before each ``LLMContextFrame``; consumed by
    the SpeculationHold. An LLM service that wants to know which turn it is generating for
    (e.g. to honour ``LLMCancelFrame(turn_id)`` precisely) can read it on the way through.
    """

    turn_id: int = 0
    speculative: bool = False


@dataclass
class ReplyDroppedFrame(ControlFrame):
    """The rest of an agent reply that was partly passed on was dropped (its turn was cancelled).

    Followed by an ``LLMFullResponseEndFrame`` closing that reply. The SentenceAggregator
    forgets the unspoken text it buffered instead of flushing it.
    """

    turn_id: int = 0


class _Verdict(Enum):
    PENDING = "pending"
    COMMITTED = "committed"
    DISCARDED = "discarded"


class _Mode(Enum):
    IDLE = "idle"  # between generations: pass
    LIVE = "live"  # inside a generation that may be spoken: pass
    HOLD = "hold"  # inside a pending speculation: buffer
    DROP = "drop"  # inside a discarded (or interrupted) generation: drop its output


def _is_generation_output(frame: Frame) -> bool:
    """LLM output (text and its brackets), as opposed to frames merely passing by."""
    return isinstance(
        frame,
        (
            TextFrame,
            LLMFullResponseStartFrame,
            LLMFullResponseEndFrame,
            LLMThoughtStartFrame,
            LLMThoughtEndFrame,
        ),
    )


class SpeculationHold(FrameProcessor):
    """Buffers the output of a speculative generation until its turn is committed or discarded."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._verdicts: dict[int, _Verdict] = {}
        self._claims: deque[int] = deque()
        self._tagged = False
        self._next_tag: GenerationTagFrame | None = None
        self._held: dict[int, list[Frame]] = {}
        self._current: int | None = None
        self._mode = _Mode.IDLE
        self._lock = asyncio.Lock()

    @property
    def holding(self) -> bool:
        """Whether any speculative output is being held."""
        return bool(self._held)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Hold, release or drop LLM output; everything else passes."""
        await super().process_frame(frame, direction)
        if direction != FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
            return
        # Decisions are synchronous; the lock keeps a release (system task) and live frames
        # (data task) from interleaving their pushes.
        async with self._lock:
            for out in self._route(frame):
                await self.push_frame(out, direction)

    # ------------------------------------------------------------------ decisions

    def _route(self, frame: Frame) -> list[Frame]:
        if isinstance(frame, SystemFrame):
            out: list[Frame] = [frame]
            if isinstance(frame, SpeculationStartFrame):
                self._verdicts[frame.turn_id] = _Verdict.PENDING
                if not self._tagged:
                    self._claims.append(frame.turn_id)
            elif isinstance(frame, SpeculationCommitFrame):
                out += self._commit(frame.turn_id)
            elif isinstance(frame, SpeculationDiscardFrame):
                out += self._discard(frame.turn_id)
            elif isinstance(frame, InterruptionFrame):
                self._interrupt()
            elif isinstance(frame, CancelFrame):
                self._held.clear()
            return out
        if isinstance(frame, (EndFrame, StopFrame)):
            self._held.clear()
            return [frame]
        if isinstance(frame, GenerationTagFrame):
            self._tagged = True
            self._next_tag = frame
            if frame.speculative:
                self._verdicts.setdefault(frame.turn_id, _Verdict.PENDING)
            return []
        if isinstance(frame, LLMFullResponseStartFrame):
            return self._begin(frame)
        return self._inside(frame)

    def _begin(self, frame: LLMFullResponseStartFrame) -> list[Frame]:
        owner: int | None = None
        if self._next_tag is not None:
            owner = self._next_tag.turn_id
            self._next_tag = None
        elif not self._tagged and self._claims:
            owner = self._claims.popleft()
        self._current = owner
        if owner is not None:
            self._prune(owner)
        verdict = self._verdicts.get(owner) if owner is not None else None
        if verdict is _Verdict.PENDING:
            assert owner is not None
            self._mode = _Mode.HOLD
            self._held[owner] = [frame]
            return []
        if verdict is _Verdict.DISCARDED:
            self._mode = _Mode.DROP
            return []
        self._mode = _Mode.LIVE
        return [frame]

    def _inside(self, frame: Frame) -> list[Frame]:
        mode, current = self._mode, self._current
        if isinstance(frame, LLMFullResponseEndFrame) and mode is not _Mode.IDLE:
            self._finish()
        if mode is _Mode.HOLD and current is not None and current in self._held:
            self._held[current].append(frame)
            return []
        if mode is _Mode.DROP and _is_generation_output(frame):
            return []
        return [frame]

    def _finish(self) -> None:
        """The current generation ended (its output may still be held)."""
        owner = self._current
        if owner is not None and owner not in self._held:
            self._verdicts.pop(owner, None)
        self._current = None
        self._mode = _Mode.IDLE

    def _commit(self, turn_id: int) -> list[Frame]:
        self._verdicts[turn_id] = _Verdict.COMMITTED
        released = self._held.pop(turn_id, [])
        if self._current == turn_id:
            if self._mode is _Mode.HOLD:
                self._mode = _Mode.LIVE
        elif released:
            self._verdicts.pop(turn_id, None)  # the generation already ended
        if released:
            logger.debug(f"{self}: turn {turn_id} committed, releasing {len(released)} frames")
        return released

    def _discard(self, turn_id: int) -> list[Frame]:
        self._verdicts[turn_id] = _Verdict.DISCARDED
        held = self._held.pop(turn_id, None)
        # Frames that merely passed by while holding (not this generation's output) survive.
        out = [f for f in held or [] if not _is_generation_output(f) or not f.interruptible]
        if self._current == turn_id:
            if self._mode is _Mode.LIVE:
                # Part of this reply already went on: close it without speaking the rest.
                out += [ReplyDroppedFrame(turn_id=turn_id), LLMFullResponseEndFrame()]
            self._mode = _Mode.DROP
        elif held is not None:
            self._verdicts.pop(turn_id, None)  # the generation already ended
        return out

    def _interrupt(self) -> None:
        """A barge-in: forget every speculation; drop the stale tail of an open generation."""
        self._held.clear()
        self._verdicts.clear()
        self._claims.clear()
        self._next_tag = None
        self._current = None
        if self._mode is not _Mode.IDLE:
            self._mode = _Mode.DROP

    def _prune(self, owner: int) -> None:
        """Generations run in order: verdicts of earlier turns with nothing held are stale."""
        stale = [t for t in self._verdicts if t < owner and t not in self._held]
        for t in stale:
            del self._verdicts[t]
        while len(self._verdicts) > _MAX_TRACKED:
            del self._verdicts[min(self._verdicts)]
