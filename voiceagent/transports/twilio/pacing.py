"""One pacing tick for the senders of every call: a timer per 20 ms, not per frame per call.

Each ``TwilioOutput`` sends a 20 ms frame once its pacer allows it. A timer per frame per call
wakes the event loop at as many distinct instants as there are speaking calls times fifty a
second; here every sender waits on one shared tick (one per clock and event loop), which
fires on a fixed 20 ms grid and wakes all senders due by then at once, in one pass of the
loop. A sender is woken at the first tick at or after its send time: a frame never leaves
early (Twilio never holds more than ``lead_ms``) and at most one period late, which the
``lead_ms`` Twilio still holds absorbs (the lateness does not add up: each send time follows
from the audio sent, not from when the previous frame left).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import weakref

from voiceagent.clock import Clock, TimerHandle

TICK_S = 0.02
_SLACK = 1e-3
"""Share of a period within which a send time counts as on a tick (float rounding, timers a
hair early)."""


class PacingTick:
    """Wakes waiting senders on a shared grid of ``period_s`` (see the module docstring)."""

    def __init__(self, clock: Clock, period_s: float = TICK_S) -> None:
        self._clock = clock
        self.period_s = period_s
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []  # (when, seq, waiter)
        self._seq = itertools.count()
        self._timer: TimerHandle | None = None
        self._armed_at: float | None = None

    @property
    def waiting(self) -> int:
        """Senders waiting for a tick."""
        return sum(1 for _, _, future in self._waiting if not future.done())

    @staticmethod
    def due(delay_s: float) -> bool:
        """Whether a send ``delay_s`` from now may go now (allowing float rounding)."""
        return delay_s <= 1e-9

    async def until(self, when: float) -> None:
        """Return at the first tick at which ``when`` (clock time) is due."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (when, next(self._seq), future))
        self._arm()
        await future

    def _arm(self) -> None:
        waiting = self._waiting
        while waiting and waiting[0][2].done():  # cancelled waiters (a call ended)
            heapq.heappop(waiting)
        if not waiting:
            return
        period = self.period_s
        tick = math.ceil(waiting[0][0] / period - _SLACK) * period
        if self._armed_at is not None and self._armed_at <= tick:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._armed_at = tick
        early = _SLACK * period  # the grid is float arithmetic: never miss a tick by rounding
        self._timer = self._clock.call_later(tick - self._clock.now() - early, self._fire)

    def _fire(self) -> None:
        armed_at = self._armed_at if self._armed_at is not None else float("-inf")
        self._timer = self._armed_at = None
        limit = max(self._clock.now(), armed_at) + _SLACK * self.period_s
        waiting = self._waiting
        while waiting and waiting[0][0] <= limit:
            _, _, future = heapq.heappop(waiting)
            if not future.done():
                future.set_result(None)
        self._arm()


_TICKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakKeyDictionary] = (
    weakref.WeakKeyDictionary()
)


def shared_tick(clock: Clock) -> PacingTick:
    """The tick every sender on ``clock`` in the running event loop shares."""
    per_loop = _TICKS.setdefault(asyncio.get_running_loop(), weakref.WeakKeyDictionary())
    tick = per_loop.get(clock)
    if tick is None:
        tick = per_loop[clock] = PacingTick(clock)
    return tick
