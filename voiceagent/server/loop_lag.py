"""How far behind the event loop runs: the load figure a load balancer and the admission read.

A ticker asks the loop to wake it every ``interval_s``; how late it wakes is the loop's lag
(every call's frames wait that long too). The lag reported is the worst over the last
``window_s``, so one slow moment is seen by a health check that polls every few seconds.
"""

from __future__ import annotations

import asyncio
from collections import deque

from voiceagent.clock import DEFAULT_CLOCK, Clock


class LoopLag:
    """The event loop's recent lag (see the module docstring)."""

    def __init__(
        self, *, interval_s: float = 0.1, window_s: float = 2.0, clock: Clock = DEFAULT_CLOCK
    ) -> None:
        """Create the monitor (it measures once :meth:`run` runs as a task)."""
        self.interval_s = interval_s
        self.window_s = window_s
        self._clock = clock
        self._recent: deque[tuple[float, float]] = deque()  # (when, lag), oldest first
        self.worst_s = 0.0
        """The largest lag seen since start."""

    def record(self, now: float, lag_s: float) -> None:
        """One measurement: the ticker woke ``lag_s`` late at ``now``."""
        recent = self._recent
        while recent and recent[-1][1] <= lag_s:  # a smaller lag before a larger one never counts
            recent.pop()
        recent.append((now, lag_s))
        self.worst_s = max(self.worst_s, lag_s)

    def lag_s(self, now: float | None = None) -> float:
        """The worst lag within the window ending ``now`` (0 when nothing was late)."""
        now = self._clock.now() if now is None else now
        recent = self._recent
        while recent and now - recent[0][0] > self.window_s:
            recent.popleft()
        return recent[0][1] if recent else 0.0

    async def run(self) -> None:
        """Measure until cancelled."""
        clock = self._clock
        while True:
            due = clock.now() + self.interval_s
            await asyncio.sleep(self.interval_s)
            now = clock.now()
            self.record(now, max(0.0, now - due))
