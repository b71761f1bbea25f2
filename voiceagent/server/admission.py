"""Admission control of one worker: past capacity a new call gets a busy answer.

Calls already up keep their latency: they are never touched. A call is admitted twice: at the
voice webhook (``POST /twiml``), which then reserves a slot for the Media Stream Twilio opens
next, and when that stream arrives (``GET /media``). The webhook refuses when the active calls
plus the reserved slots reach ``max_calls``, or while the event loop runs more than
``max_loop_lag_ms`` late (the worker is already slow, whatever the count). A stream with a
reservation is admitted while the active calls stay under the limit; a stream without one (no
webhook went first, e.g. a test caller) is judged like a webhook. Reservations expire after
``reservation_s`` (a call that never connected).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from twilio.twiml.voice_response import VoiceResponse

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.server.loop_lag import LoopLag
from voiceagent.settings import ServerSettings

BUSY_CLOSE_CODE = 1013
"""WebSocket "Try Again Later": a new stream refused because the worker is full."""


@dataclass(frozen=True)
class Load:
    """What a load balancer needs to steer new calls."""

    active_calls: int
    reserved: int
    max_calls: int
    loop_lag_ms: float
    refusing: str | None
    """Why new calls are refused now (``"full"``, ``"slow"``), or None."""


class Admission:
    """Decides whether a new call may start on this worker (see the module docstring)."""

    def __init__(
        self,
        settings: ServerSettings,
        active_calls: Callable[[], int],
        lag: LoopLag,
        *,
        reservation_s: float = 10.0,
        clock: Clock = DEFAULT_CLOCK,
    ) -> None:
        """Create the admission.

        Args:
            settings: ``max_calls``, ``max_loop_lag_ms``, the busy answer.
            active_calls: Returns the number of calls in progress.
            lag: The event loop's lag monitor.
            reservation_s: How long a webhook's reservation waits for its stream.
            clock: Time source of reservations and lag.
        """
        self.max_calls = settings.max_calls
        self.max_lag_s = settings.max_loop_lag_ms / 1000.0
        self._settings = settings
        self._active = active_calls
        self._lag = lag
        self._reservation_s = reservation_s
        self._clock = clock
        self._reservations: deque[float] = deque()  # expiry times, oldest first

    def _reserved(self, now: float) -> int:
        reservations = self._reservations
        while reservations and reservations[0] <= now:
            reservations.popleft()
        return len(reservations)

    def refusing(self, now: float | None = None) -> str | None:
        """Why a new call would be refused now (``"full"`` or ``"slow"``), or None."""
        now = self._clock.now() if now is None else now
        if self._active() + self._reserved(now) >= self.max_calls:
            return "full"
        if self._lag.lag_s(now) > self.max_lag_s:
            return "slow"
        return None

    def admit_webhook(self) -> str | None:
        """A call's webhook: None and a slot reserved, or why it is refused."""
        now = self._clock.now()
        reason = self.refusing(now)
        if reason is None:
            self._reservations.append(now + self._reservation_s)
        return reason

    def admit_stream(self) -> str | None:
        """A new Media Stream, about to be registered: None if admitted, or why not."""
        now = self._clock.now()
        if self._reserved(now):
            self._reservations.popleft()
            return "full" if self._active() >= self.max_calls else None
        return self.refusing(now)

    def load(self) -> Load:
        """The worker's load now."""
        now = self._clock.now()
        return Load(
            active_calls=self._active(),
            reserved=self._reserved(now),
            max_calls=self.max_calls,
            loop_lag_ms=round(self._lag.lag_s(now) * 1000.0, 1),
            refusing=self.refusing(now),
        )

    def busy_twiml(self) -> str:
        """The webhook's answer past capacity: a short message and a hang-up, or a reject."""
        response = VoiceResponse()
        if self._settings.busy_answer == "reject":
            response.reject(reason="busy")
        else:
            response.say(self._settings.busy_message)
            response.hangup()
        return response.to_xml()
