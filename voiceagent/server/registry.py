"""Bookkeeping of the calls in progress, and the drain used by graceful shutdown.

Frames for a call that arrive from outside its stream (Twilio's AMD result) are delivered to
the live call by its call sid, or kept in a small mailbox until its stream starts.
:func:`find_live_call` looks a call up in every registry of this process (a library call such
as ``transfer_call`` has no handle on the server that streams it).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from typing import Protocol

from loguru import logger
from pipecat.frames.frames import Frame

from voiceagent.clock import DEFAULT_CLOCK, Clock


class ActiveCall(Protocol):
    """What the registry needs from one call in progress."""

    @property
    def label(self) -> str:
        """Short name for logs (the call sid once known)."""

    @property
    def frames_in(self) -> int:
        """Media messages received so far."""

    @property
    def frames_out(self) -> int:
        """Media messages sent so far."""

    @property
    def finished(self) -> asyncio.Event:
        """Set once the call is over (pipeline done, socket closed)."""

    async def end(self, reason: str) -> None:
        """Ask the call to end cleanly now (EndFrame to the pipeline, close 1001)."""

    async def deliver(self, frame: Frame) -> bool:
        """Queue ``frame`` into the call's pipeline; False when the call has not started."""


MAILBOX_SIZE = 1000
"""Calls whose undelivered frames are kept at once (the oldest are dropped first)."""
MAILBOX_TTL_S = 120.0
"""How long a frame waits for its call's stream to start."""


_REGISTRIES: weakref.WeakSet[CallRegistry] = weakref.WeakSet()


def find_live_call(call_sid: str) -> ActiveCall | None:
    """The call with this call sid that a server of this process is streaming now, if any."""
    if not call_sid:
        return None
    for registry in list(_REGISTRIES):
        call = registry.find(call_sid)
        if call is not None and not call.finished.is_set():
            return call
    return None


class CallRegistry:
    """The calls in progress and whether new ones are accepted."""

    def __init__(self, *, clock: Clock = DEFAULT_CLOCK) -> None:
        self._calls: set[ActiveCall] = set()
        self._accepting = True
        self._clock = clock
        self._mail: OrderedDict[str, tuple[float, list[Frame]]] = OrderedDict()
        _REGISTRIES.add(self)

    @property
    def accepting(self) -> bool:
        """False once shutdown began: new calls are refused."""
        return self._accepting

    @property
    def active_count(self) -> int:
        """Number of calls in progress."""
        return len(self._calls)

    @property
    def calls(self) -> tuple[ActiveCall, ...]:
        """Snapshot of the calls in progress."""
        return tuple(self._calls)

    def register(self, call: ActiveCall) -> bool:
        """Add a call; False (not added) when shutdown began."""
        if not self._accepting:
            return False
        self._calls.add(call)
        return True

    def unregister(self, call: ActiveCall) -> None:
        """Remove a finished call (no-op when unknown)."""
        self._calls.discard(call)

    def find(self, call_sid: str) -> ActiveCall | None:
        """The call in progress with this call sid (its ``label`` once Twilio's start came)."""
        return next((c for c in self._calls if c.label == call_sid), None)

    async def deliver(self, call_sid: str, frame: Frame) -> bool:
        """Queue ``frame`` into call ``call_sid``'s pipeline, or keep it until the call starts.

        Returns:
            Whether it reached a live call now.
        """
        call = self.find(call_sid)
        if call is not None and await call.deliver(frame):
            return True
        now = self._clock.now()
        _, frames = self._mail.pop(call_sid, (now, []))
        frames.append(frame)
        self._mail[call_sid] = (now, frames)
        while len(self._mail) > MAILBOX_SIZE:
            self._mail.popitem(last=False)
        return False

    def take_mail(self, call_sid: str) -> list[Frame]:
        """The frames kept for ``call_sid`` (now starting), oldest first; forgets them."""
        now = self._clock.now()
        while self._mail:
            sid, (kept_at, _) = next(iter(self._mail.items()))
            if now - kept_at <= MAILBOX_TTL_S:
                break
            del self._mail[sid]
        _, frames = self._mail.pop(call_sid, (now, []))
        return frames

    def stop_accepting(self) -> None:
        """Refuse new calls from now on."""
        self._accepting = False

    async def end_all(self, grace_s: float, *, end_timeout_s: float = 10.0) -> int:
        """Stop accepting; let calls finish within ``grace_s``, then end the rest cleanly.

        Args:
            grace_s: How long active calls may continue on their own.
            end_timeout_s: How long each ended call gets to wind down afterwards.

        Returns:
            How many calls had to be ended by the server.
        """
        self.stop_accepting()
        calls = self.calls
        if not calls:
            return 0
        logger.info(f"draining {len(calls)} active call(s), grace {grace_s:.1f} s")
        pending = await self._wait_finished(calls, grace_s)
        if not pending:
            return 0
        logger.warning(
            f"grace of {grace_s:.1f} s over: ending {len(pending)} call(s) "
            f"({', '.join(sorted(c.label for c in pending))})"
        )
        enders = [asyncio.ensure_future(call.end("server shutdown")) for call in pending]
        await asyncio.wait(enders, timeout=end_timeout_s)
        for call, ender in zip(pending, enders, strict=True):
            if not ender.done():
                ender.cancel()
                logger.error(
                    f"call {call.label}: did not finish {end_timeout_s:.1f} s after ending"
                )
            elif not ender.cancelled() and ender.exception() is not None:
                logger.error(f"call {call.label}: ending it failed: {ender.exception()!r}")
        return len(pending)

    @staticmethod
    async def _wait_finished(
        calls: tuple[ActiveCall, ...], timeout: float
    ) -> tuple[ActiveCall, ...]:
        """Wait up to ``timeout`` for ``calls`` to finish; return those still running."""
        waiters = [
            asyncio.ensure_future(c.finished.wait()) for c in calls if not c.finished.is_set()
        ]
        if not waiters:
            return ()
        try:
            if timeout > 0:
                await asyncio.wait(waiters, timeout=timeout)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return tuple(c for c in calls if not c.finished.is_set())
