"""Cold transfer: hand the caller to a person at a number or SIP URI, then leave the call.

Twilio runs new TwiML on a live call when asked (``calls(sid).update_async(twiml=…)``): the
``<Connect><Stream>`` to the agent ends and ``<Dial>`` rings the person, the caller staying on
the line. In a call, the ``transfer_call`` tool does it after the agent's hand-off sentence has
been heard (``CallHangUp.request`` with this module's action and ``end_reason="transferred"``);
if Twilio refuses (an invalid number, a rate limit, the call already over) the agent says so
and the conversation goes on. :func:`transfer_call` is the same REST request for library use;
on a call a server of this process is streaming it first declares ``transferred`` into that
call (a ``CallEndReasonFrame`` through the server's call registry), so the record does not
mistake the redirect's ``stop`` for the caller hanging up.

A warm transfer (the agent briefs the person before connecting the caller) is not offered:
see the README's "Outbound calls, transfer, voicemail" section for why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from loguru import logger
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.processors.frame_processor import FrameProcessor
from pydantic import BaseModel, Field, create_model
from twilio.twiml.voice_response import VoiceResponse

from voiceagent.frames import CallEndReasonFrame
from voiceagent.processors.hang_up import CallAction, CallHangUp
from voiceagent.server.registry import ActiveCall, find_live_call
from voiceagent.services.tools import AgentTool
from voiceagent.settings import Settings
from voiceagent.telephony.end_reason import EndReason
from voiceagent.telephony.numbers import check_transfer_target, is_sip_uri
from voiceagent.transports.twilio.rest import TwilioRestClient, TwilioRestError

TRANSFER_HINT = (
    "transfer_call to hand the caller to a person (say that you are transferring them in the "
    "same reply, before calling it)"
)


def dial_twiml(target: str, *, caller_id: str | None = None, say: str | None = None) -> str:
    """``<Response>[<Say>say</Say>]<Dial [callerId]><Number>|<Sip>target</…></Dial></Response>``.

    Raises:
        InvalidNumberError: ``target`` is neither an E.164 number nor a SIP URI.
    """
    target = check_transfer_target(target)
    response = VoiceResponse()
    if say:
        response.say(say)
    dial = response.dial(caller_id=caller_id) if caller_id else response.dial()
    if is_sip_uri(target):
        dial.sip(target)
    else:
        dial.number(target)
    return response.to_xml()


async def transfer_call(
    settings: Settings,
    call_sid: str,
    target: str,
    *,
    say: str | None = None,
    caller_id: str | None = None,
    rest: TwilioRestClient | None = None,
) -> None:
    """Move live call ``call_sid`` to ``target`` now (Twilio speaks ``say`` first, if given).

    The call's media stream ends. When a server of this process streams the call, its record
    says ``transferred`` (declared into the live call before Twilio is asked, withdrawn if
    Twilio refuses); a call streamed by another process is recorded as ended by the caller,
    as that server cannot tell this redirect from a hang-up.

    Raises:
        InvalidNumberError: ``target`` is neither an E.164 number nor a SIP URI.
        ValueError: no Twilio credentials configured.
        TwilioRestError: Twilio refused (e.g. ``not_found``: the call is over) or was unreachable.
    """
    twiml = dial_twiml(
        target, caller_id=caller_id or settings.telephony.transfer_caller_id, say=say
    )
    client = rest or TwilioRestClient.from_settings(settings)
    if client is None:
        raise ValueError("transfers need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    live = find_live_call(call_sid)
    declared = await _declare(live, EndReason.TRANSFERRED.value, f"transfer to {target}")
    try:
        await client.update_call(call_sid, twiml=twiml)
    except TwilioRestError:
        if declared:
            await _declare(live, "", "transfer refused")
        raise
    where = " (a call this server streams)" if declared else ""
    logger.info(f"call {call_sid}: transferred to {target}{where}")


async def _declare(call: ActiveCall | None, reason: str, detail: str) -> bool:
    """Tell the live call's record why it ends (``""`` withdraws it); whether it was told."""
    if call is None:
        return False
    return await call.deliver(CallEndReasonFrame(reason=reason, detail=detail))


def transfer_action(
    rest: TwilioRestClient,
    target: str,
    *,
    caller_id: str | None,
    on_failure: Callable[[TwilioRestError], Any] | None = None,
) -> CallAction:
    """The ``CallHangUp`` action that redirects the call to ``target`` (True when Twilio agreed)."""
    twiml = dial_twiml(target, caller_id=caller_id)

    async def redirect(call_sid: str) -> bool:
        if not call_sid:
            logger.warning("transfer: the call has no call sid yet; not transferring")
            return False
        try:
            await rest.update_call(call_sid, twiml=twiml)
        except TwilioRestError as e:
            logger.warning(f"call {call_sid}: transfer to {target} failed: {e}")
            if on_failure is not None:
                await on_failure(e)
            return False
        logger.info(f"call {call_sid}: transferred to {target}")
        return True

    return redirect


class TransferDesk:
    """One call's ``transfer_call`` tool: named destinations, the hand-over, the apology."""

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        rest: TwilioRestClient,
        hang_up: CallHangUp,
        caller_id: str | None = None,
        failed_text: str = "",
        speak_via: Callable[[], FrameProcessor | None] | None = None,
    ) -> None:
        """Create the desk.

        Args:
            targets: Destination name → E.164 number or SIP URI (validated here).
            rest: Twilio's REST API.
            hang_up: The call's ``CallHangUp`` (it runs the transfer after the hand-off).
            caller_id: ``<Dial callerId>`` of the new leg (None: the caller's number).
            failed_text: Said when Twilio refuses the transfer.
            speak_via: Where ``failed_text`` enters the pipeline (the LLM), if anywhere.

        Raises:
            InvalidNumberError: a target is neither an E.164 number nor a SIP URI.
        """
        if not targets:
            raise ValueError("transfer_call needs at least one destination")
        self.targets = {name: check_transfer_target(t) for name, t in targets.items()}
        self._rest = rest
        self._hang_up = hang_up
        self._caller_id = caller_id
        self._failed_text = failed_text
        self._speak_via = speak_via
        self.transfers: list[str] = []
        """Destinations asked for on this call, in order."""

    def tool(self) -> AgentTool[Any]:
        """The ``transfer_call`` tool (side effects: only for turns the caller committed).

        Its arguments model is made for this desk: ``destination`` is one of its names (an
        ``enum`` in the schema the LLM is offered, refused otherwise).
        """
        names = sorted(self.targets)
        # An enum (not a Literal, whose single value would be a JSON-schema ``const``).
        destination = StrEnum("Destination", {name: name for name in names})
        request = create_model(
            "TransferRequest",
            destination=(destination, Field(description="Who to transfer the caller to")),
            reason=(str | None, Field(None, description="Why the caller needs a person")),
        )
        return AgentTool(
            "transfer_call",
            "Transfer the caller to a person. Tell the caller you are transferring them in "
            "the same reply, before calling this. Destinations: " + ", ".join(names) + ".",
            request,
            self.transfer,
            side_effects=True,
            follow_up=False,
        )

    async def transfer(self, request: BaseModel) -> dict[str, Any]:
        """Tool handler: transfer once the hand-off sentence has been heard."""
        name = str(getattr(request, "destination", ""))  # a StrEnum member: its value
        target = self.targets.get(name)
        if target is None:  # the model offered only these names: a programming error
            known = ", ".join(sorted(self.targets))
            return {"error": f"unknown destination {name!r}; one of: {known}", "executed": False}
        action = transfer_action(
            self._rest, target, caller_id=self._caller_id, on_failure=self._apologize
        )
        reason = str(getattr(request, "reason", None) or f"transfer to {name}")[:200]
        if not await self._hang_up.request(
            reason, end_reason=EndReason.TRANSFERRED.value, action=action
        ):
            return {"error": "the call is already ending", "executed": False}
        self.transfers.append(name)
        return {"transferring": True, "destination": name}

    async def _apologize(self, error: TwilioRestError) -> None:
        via = self._speak_via() if self._speak_via is not None else None
        if via is not None and self._failed_text:
            await via.queue_frame(TTSSpeakFrame(self._failed_text))
