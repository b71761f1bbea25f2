"""Flood control and error accounting for one call's inbound Media Stream messages."""

from __future__ import annotations

from collections import deque

from loguru import logger

from voiceagent.clock import DEFAULT_CLOCK, Clock


class InboundGuard:
    """Flood control and error accounting for one call's inbound messages. Clock-injected.

    A token bucket admits ``rate`` messages per second with bursts of ``burst``, refilled on
    the *caller's* clock, not on when the server happens to read: Twilio stamps every media
    message with its stream time (``media.timestamp``), so messages that waited in the socket
    while the event loop was busy (or while the call's pipeline was being built), read late and
    all at once, are judged at the pace they were sent. A stream starts after its socket opened
    (when the guard is made), so a message was sent no earlier than ``opened + timestamp`` and
    no later than its arrival: that earliest send time (never after the arrival) is the
    caller's clock, and made-up timestamps buy a flooder nothing. Messages without a timestamp
    (``mark``, ``dtmf``) take a token without refilling; before any timestamp, or from a peer
    that sends none, arrival time counts.

    Errors are counted per kind; a warning per kind is logged at most every ``warn_every_s``
    (with the number suppressed meanwhile); more than ``error_limit`` errors within
    ``error_window_s`` means the call should be closed.
    """

    def __init__(
        self,
        clock: Clock = DEFAULT_CLOCK,
        *,
        rate: float = 200.0,
        burst: float = 100.0,
        error_limit: int = 50,
        error_window_s: float = 10.0,
        warn_every_s: float = 5.0,
        label: str = "twilio",
    ) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._opened = self._refilled_at = clock.now()
        self._stamped = False
        self._error_limit = error_limit
        self.error_window_s = error_window_s
        self._warn_every_s = warn_every_s
        self._recent: deque[float] = deque()
        self._warned: dict[str, tuple[float, int]] = {}
        self.label = label
        self.counts: dict[str, int] = {}

    def admit(self, sent_at_s: float | None = None) -> bool:
        """Take one token for a message; ``False`` when the caller is flooding.

        Args:
            sent_at_s: The message's own stream time (a media message's ``timestamp`` in
                seconds), if it carries one.
        """
        now = self._clock.now()
        if sent_at_s is not None:
            if not self._stamped:  # from now on the caller's clock counts, from the opening
                self._stamped = True
                self._refilled_at = min(self._refilled_at, self._opened)
            at = min(now, self._opened + sent_at_s)
        elif not self._stamped:
            at = now
        else:
            at = self._refilled_at  # no news of the caller's clock: no refill
        tokens = self._tokens
        if at > self._refilled_at:
            tokens += (at - self._refilled_at) * self._rate
            self._refilled_at = at
            if tokens > self._burst:
                tokens = self._burst
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

    def record(self, kind: str, reason: str) -> bool:
        """Count an error (rate-limited warning). Returns ``True`` once there are too many."""
        now = self._clock.now()
        self.counts[kind] = self.counts.get(kind, 0) + 1
        last, suppressed = self._warned.get(kind, (float("-inf"), 0))
        if now - last >= self._warn_every_s:
            more = f" (+{suppressed} more since last warning)" if suppressed else ""
            logger.warning(f"{self.label}: dropped inbound message [{kind}] {reason}{more}")
            self._warned[kind] = (now, 0)
        else:
            self._warned[kind] = (last, suppressed + 1)
        recent = self._recent
        recent.append(now)
        while recent and now - recent[0] > self.error_window_s:
            recent.popleft()
        return len(recent) > self._error_limit

    def recent_errors(self) -> int:
        """Errors within the current window."""
        return len(self._recent)
