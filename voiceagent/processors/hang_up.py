"""The agent ends its part of the call once its last words were heard: hang up, or hand over.

``CallHangUp`` sits after the TTS, before the transport's output. ``request(reason)`` (the
``end_call`` tool) sends a ``PlaybackFenceFrame`` in data order through ``cue_via`` — the
LLM, so the fence follows the rest of the generation that asked, through the aggregator and
the TTS — and TwilioOutput answers with ``PlaybackFenceReachedFrame`` once everything before
it has been played (Twilio's mark echoes). Then:

1. ``CallEndReasonFrame`` downstream: the call's record learns why it ends (``agent_hung_up``,
   or the request's ``end_reason``: ``transferred``, ``voicemail``) before Twilio's ``stop``
   can race it;
2. the request's ``action`` if it has one (a transfer: new TwiML for the live call); if the
   action fails, the reason is withdrawn and the call goes on. Without an action, with Twilio
   REST credentials configured, ``POST …/Calls/{CallSid}.json Status=completed`` (a failure is
   logged and counted; the call still ends) — unless the stream named no Twilio account (a
   browser softphone call: there is no Twilio call to end);
3. ``EndWorkerFrame`` upstream: the pipeline ends cleanly and the media socket is closed.

A barge-in before the fence is reached withdraws a ``withdrawable`` request: the caller cut
the goodbye short to say something, and the conversation goes on. If the fence is never
reached (a stuck TTS), the request goes ahead ``max_wait_s`` after it was made anyway.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
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
from voiceagent.frames import (
    CallEndReasonFrame,
    CallStartedFrame,
    PlaybackFenceFrame,
    PlaybackFenceReachedFrame,
)
from voiceagent.transports.twilio.rest import TwilioRestClient

_fence_ids = itertools.count(1)

CallAction = Callable[[str], Awaitable[bool]]
"""Done instead of the REST hang-up once the fence is reached (given the call sid); whether it
worked. A transfer redirects the live call; False keeps the call going."""


@dataclass
class HangUpStats:
    """What one call's hang-up did."""

    requested: int = 0
    withdrawn: int = 0
    hung_up: bool = False
    reason: str = ""
    waited_out: bool = False
    rest_ok: bool | None = None
    end_reason: str = ""
    actions_failed: int = 0


@dataclass
class _Request:
    reason: str
    fence_id: int
    end_reason: str
    action: CallAction | None
    withdrawable: bool
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
        self._closed = False

    @property
    def pending(self) -> bool:
        """Whether a hang-up waits for the agent's last words to play."""
        return self._request is not None

    async def request(
        self,
        reason: str,
        *,
        end_reason: str = "agent_hung_up",
        action: CallAction | None = None,
        cue_via: FrameProcessor | None = None,
        withdrawable: bool = True,
    ) -> bool:
        """Hang up (or run ``action``) after what the agent is saying now.

        Args:
            reason: Why, for the log and the stats.
            end_reason: What the call's record says ended it (``voiceagent.telephony.EndReason``).
            action: Run instead of the REST hang-up once the words before it were heard (a
                transfer); when it returns False the call goes on.
            cue_via: Where the fence enters the pipeline for this request (default
                :attr:`cue_via`): the processor that just queued the last words.
            withdrawable: Whether a barge-in before the fence withdraws the request.

        Returns:
            False if the call is already ending or another request is pending.
        """
        if self._ending or self._request is not None:
            return False
        self.stats.requested += 1
        request = _Request(
            reason=reason,
            fence_id=next(_fence_ids),
            end_reason=end_reason,
            action=action,
            withdrawable=withdrawable,
        )
        self._request = request
        request.timer = self._clock.call_later(self._max_wait_s, lambda: self._on_timeout(request))
        what = "hands the call over" if action is not None else "hangs up"
        logger.info(
            f"call {self.call_sid or '?'}: the agent {what} after its last words ({reason})"
        )
        fence = PlaybackFenceFrame(fence_id=request.fence_id)
        via = cue_via if cue_via is not None else self.cue_via
        if via is not None:
            await via.queue_frame(fence)
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
            self._ending = self._closed = True
            self._cancel_timer()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Cancel the timer."""
        self._cancel_timer()
        await super().cleanup()

    def _withdraw(self) -> None:
        request = self._request
        if request is None or not request.withdrawable:
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
        self.stats.end_reason = request.end_reason
        self.stats.waited_out = waited_out
        self.create_task(self._end_call(request), "hang_up")

    async def _end_call(self, request: _Request) -> None:
        # Declared before Twilio is asked, so a ``stop`` it sends in reply cannot claim the call.
        await self.push_frame(CallEndReasonFrame(reason=request.end_reason, detail=request.reason))
        if request.action is not None:
            if not await self._run_action(request):
                self.stats.actions_failed += 1
                self.stats.hung_up = False
                self._ending = self._closed
                await self.push_frame(CallEndReasonFrame(reason="", detail="action failed"))
                return
        elif self._rest is not None and self.twilio_account:
            self.stats.rest_ok = await self._rest.hang_up(self.call_sid)
        await self.push_frame(
            EndWorkerFrame(reason=f"agent: {request.reason}"), FrameDirection.UPSTREAM
        )

    async def _run_action(self, request: _Request) -> bool:
        assert request.action is not None
        try:
            return await request.action(self.call_sid)
        except Exception as e:  # a bug in the action must not leave the call half-ended
            logger.opt(exception=e).error(
                f"call {self.call_sid or '?'}: {request.reason} failed: {e!r}; the call goes on"
            )
            return False

    def _cancel_timer(self) -> None:
        request = self._request
        if request is not None and request.timer is not None:
            request.timer.cancel()
            request.timer = None
