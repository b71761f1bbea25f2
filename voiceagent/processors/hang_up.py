"""The agent hangs up: once its goodbye has been heard, end the call (and tell Twilio).

``CallHangUp`` sits after the TTS, before the transport's output. ``request(reason)`` (the
``end_call`` tool) sends a ``PlaybackFenceFrame`` in data order through ``cue_via`` — the
LLM, so the fence follows the rest of the generation that asked, through the aggregator and
the TTS — and TwilioOutput answers with ``PlaybackFenceReachedFrame`` once everything before
it has been played (Twilio's mark echoes). Then:

1. with Twilio REST credentials configured, ``POST …/Calls/{CallSid}.json Status=completed``
   (a failure is logged and counted; the call still ends) — unless the stream named no Twilio
   account (a browser softphone call: there is no Twilio call to end);
2. ``EndWorkerFrame`` upstream: the pipeline ends cleanly and the media socket is closed.

A barge-in before the fence is reached withdraws the hang-up: the caller cut the goodbye
short to say something, and the conversation goes on. If the fence is never reached (a
stuck TTS), the call is ended ``max_wait_s`` after the request anyway.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    InterruptionFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock, TimerHandle
from voiceagent.frames import CallStartedFrame, PlaybackFenceFrame, PlaybackFenceReachedFrame
from voiceagent.transports.twilio.rest import TwilioRestClient

_fence_ids = itertools.count(1)


@dataclass
class HangUpStats:
    """What one call's hang-up did."""

    requested: int = 0
    withdrawn: int = 0
    hung_up: bool = False
    reason: str = ""
    waited_out: bool = False
    rest_ok: bool | None = None


@dataclass
class _Request:
    reason: str
    fence_id: int
    timer: TimerHandle | None = None


class CallHangUp(FrameProcessor):
    """Ends the call once everything the agent said before the request has played."""

    def __init__(
        self,
        *,
        rest: TwilioRestClient | None = None,
        clock: Clock = DEFAULT_CLOCK,
        max_wait_s: float = 20.0,
        **kwargs,
    ) -> None:
        """Create the hang-up.

        Args:
            rest: Twilio's REST API, when credentials are configured (else the call ends by
                closing the media socket only, which ends a ``<Connect>`` call too).
            clock: Time source of the ``max_wait_s`` timer.
            max_wait_s: Hang up this long after the request even if the fence never came back.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._rest = rest
        self._clock = clock
        self._max_wait_s = max_wait_s
        self.cue_via: FrameProcessor | None = None
        """Where the fence enters the pipeline (the LLM); None: right here, after the TTS."""
        self.call_sid: str = ""
        self.twilio_account: str = ""
        """The Twilio account of the call (empty: not a Twilio call, nothing to tell Twilio)."""
        self.stats = HangUpStats()
        self._request: _Request | None = None
        self._ending = False

    @property
    def pending(self) -> bool:
        """Whether a hang-up waits for the agent's last words to play."""
        return self._request is not None

    async def request(self, reason: str) -> bool:
        """Hang up after what the agent is saying now; False if the call is already ending."""
        if self._ending or self._request is not None:
            return False
        self.stats.requested += 1
        request = _Request(reason=reason, fence_id=next(_fence_ids))
        self._request = request
        request.timer = self._clock.call_later(self._max_wait_s, lambda: self._on_timeout(request))
        logger.info(f"call {self.call_sid or '?'}: the agent hangs up after its goodbye ({reason})")
        fence = PlaybackFenceFrame(fence_id=request.fence_id)
        if self.cue_via is not None:
            await self.cue_via.queue_frame(fence)
        else:
            await self.push_frame(fence)
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Learn the call sid, watch for the fence and barge-ins; forward everything."""
        await super().process_frame(frame, direction)
        if isinstance(frame, CallStartedFrame):
            self.call_sid = frame.call_sid
            self.twilio_account = frame.account_sid
        elif isinstance(frame, PlaybackFenceReachedFrame):
            request = self._request
            if request is not None and frame.fence_id == request.fence_id:
                self._hang_up(request, waited_out=False)
                return
        elif isinstance(frame, InterruptionFrame):
            self._withdraw()
        elif isinstance(frame, EndFrame | CancelFrame):
            self._ending = True
            self._cancel_timer()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Cancel the timer."""
        self._cancel_timer()
        await super().cleanup()

    def _withdraw(self) -> None:
        request = self._request
        if request is None:
            return
        self._cancel_timer()
        self._request = None
        self.stats.withdrawn += 1
        logger.info(
            f"call {self.call_sid or '?'}: the caller spoke over the goodbye; "
            f"not hanging up ({request.reason})"
        )

    def _on_timeout(self, request: _Request) -> None:
        if self._request is request:
            request.timer = None
            logger.warning(
                f"call {self.call_sid or '?'}: the goodbye did not finish playing within "
                f"{self._max_wait_s:.0f} s; hanging up anyway"
            )
            self._hang_up(request, waited_out=True)

    def _hang_up(self, request: _Request, *, waited_out: bool) -> None:
        self._cancel_timer()
        self._request = None
        self._ending = True
        self.stats.hung_up = True
        self.stats.reason = request.reason
        self.stats.waited_out = waited_out
        self.create_task(self._end_call(request.reason), "hang_up")

    async def _end_call(self, reason: str) -> None:
        if self._rest is not None and self.twilio_account:
            self.stats.rest_ok = await self._rest.hang_up(self.call_sid)
        await self.push_frame(EndWorkerFrame(reason=f"agent: {reason}"), FrameDirection.UPSTREAM)

    def _cancel_timer(self) -> None:
        request = self._request
        if request is not None and request.timer is not None:
            request.timer.cancel()
            request.timer = None
