"""One injectable clock so turn logic is testable without sleeping.

Every processor that reasons about time takes a ``Clock``. Production uses
``MonotonicClock``; tests use ``ManualClock`` and advance it explicitly.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None:
        """Cancel the callback if it has not run yet."""


class Clock(Protocol):
    """Monotonic time in seconds plus one-shot timers."""

    def now(self) -> float:
        """Current monotonic time in seconds."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` (a plain function) after ``delay`` seconds."""


class MonotonicClock:
    """The real clock: ``time.monotonic`` and the running event loop's timers."""

    def now(self) -> float:
        """Current monotonic time in seconds."""
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Schedule ``callback`` on the running loop."""
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)


class _ManualTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to; timers fire inside ``advance``."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """Current (manual) time in seconds."""
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Schedule ``callback`` at ``now() + delay`` of manual time."""
        handle = _ManualTimer()
        heapq.heappush(
            self._timers, (self._now + max(0.0, delay), next(self._seq), handle, callback)
        )
        return handle

    def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in order (timers may schedule more)."""
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, handle, callback = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not handle.cancelled:
                callback()
        self._now = target


DEFAULT_CLOCK: Clock = MonotonicClock()


class Deadline:
    """One pending wake-up at an absolute clock time; setting the same time again is free.

    Turn logic keeps a single "next decision" time that it recomputes after every event;
    ``set`` re-arms the clock timer only when that time changed.
    """

    def __init__(self, clock: Clock, callback: Callable[[], None], *, early_s: float = 0.0):
        self._clock = clock
        self._callback = callback
        self._early_s = early_s
        self._handle: TimerHandle | None = None
        self._at: float | None = None

    @property
    def at(self) -> float | None:
        """The armed time, or None."""
        return self._at

    def set(self, at: float | None) -> None:
        """Wake up at ``at`` (clock time; None: not at all), replacing any other wake-up."""
        if at == self._at:
            return
        self.cancel()
        self._at = at
        if at is not None:
            delay = max(0.0, at - self._clock.now() - self._early_s)
            self._handle = self._clock.call_later(delay, self._fire)

    def cancel(self) -> None:
        """Drop the pending wake-up."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._at = None

    def _fire(self) -> None:
        self._handle = None
        self._at = None
        self._callback()
