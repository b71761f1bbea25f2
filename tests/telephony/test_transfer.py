"""Transfers: the library call against the fake Twilio, and the tool's contract."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import pytest
from pipecat.frames.frames import Frame

from tests.telephony.accounts import ACCOUNT, FRONT_DESK, OUR_NUMBER, PERSON, TOKEN
from tests.telephony.fake_twilio import Callee, FakeTwilio
from voiceagent.frames import CallEndReasonFrame
from voiceagent.processors.hang_up import CallHangUp
from voiceagent.server.registry import CallRegistry, find_live_call
from voiceagent.settings import Settings
from voiceagent.telephony import InvalidNumberError, transfer_call
from voiceagent.telephony.transfer import TransferDesk
from voiceagent.transports.twilio.rest import TwilioRestClient, TwilioRestError


def settings_for(twilio: FakeTwilio) -> Settings:
    return Settings(
        server={"twilio_auth_token": TOKEN},
        twilio={"account_sid": ACCOUNT, "api_base_url": twilio.base_url, "timeout_s": 2.0},
        telephony={"transfer_caller_id": OUR_NUMBER},
    )


async def live_call(twilio: FakeTwilio) -> str:
    twilio.callees[PERSON] = Callee(ring_s=0.05)
    rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=twilio.base_url)
    call = await rest.create_call(
        to=PERSON, from_=OUR_NUMBER, twiml="<Response><Pause/></Response>"
    )
    return call.sid


async def test_the_library_call_redirects_a_live_call_to_dial_the_person(twilio: FakeTwilio):
    sid = await live_call(twilio)
    await transfer_call(settings_for(twilio), sid, FRONT_DESK, say="Connecting you now.")
    [update] = twilio.calls[sid].updates
    twiml = ET.fromstring(update["Twiml"])
    assert twiml.find("Say").text == "Connecting you now."
    assert twiml.find("Dial").get("callerId") == OUR_NUMBER
    assert twiml.find("Dial/Number").text == FRONT_DESK
    assert twilio.calls[sid].transferred_to == FRONT_DESK


async def test_the_library_call_refuses_bad_targets_and_names_twilios_refusals(twilio: FakeTwilio):
    sid = await live_call(twilio)
    with pytest.raises(InvalidNumberError):
        await transfer_call(settings_for(twilio), sid, "front desk")
    assert not twilio.calls[sid].updates  # refused before asking Twilio
    with pytest.raises(TwilioRestError) as raised:
        await transfer_call(settings_for(twilio), "CA" + "9" * 32, FRONT_DESK)
    assert raised.value.kind == "not_found"
    await twilio.finished(sid)
    with pytest.raises(TwilioRestError) as raised:  # the call is over: 400 / 21220
        await transfer_call(settings_for(twilio), sid, FRONT_DESK)
    assert (raised.value.status, raised.value.code) == (400, 21220)


async def test_the_tool_offers_named_destinations_only_and_hands_over_after_the_words():
    class Rest:
        async def update_call(self, call_sid: str, **params) -> None:
            raise AssertionError("not before the hand-off was heard")

    hang_up = CallHangUp()
    desk = TransferDesk({"front desk": "+1 555 010 0123"}, rest=Rest(), hang_up=hang_up)
    tool = desk.tool()
    assert tool.side_effects and not tool.follow_up
    assert tool.parameters["properties"]["destination"]["enum"] == ["front desk"]
    assert desk.targets == {"front desk": FRONT_DESK}
    assert await tool.call({"destination": "billing"}) == {  # the model's enum refuses it
        "error": "invalid arguments for transfer_call: destination: Input should be 'front desk'",
        "executed": False,
    }
    requests = []

    async def request(reason: str, **options) -> bool:
        requests.append((reason, options))
        return True

    hang_up.request = request  # the fence is CallHangUp's business; here: what it is asked
    assert await tool.call({"destination": "front desk", "reason": "billing question"}) == {
        "transferring": True,
        "destination": "front desk",
    }
    [(reason, options)] = requests
    assert reason == "billing question" and options["end_reason"] == "transferred"
    assert callable(options["action"])
    with pytest.raises(InvalidNumberError):
        TransferDesk({"front desk": "555"}, rest=Rest(), hang_up=hang_up)


@dataclass(eq=False)
class StreamedCall:
    """A call a server of this process streams (what the registry knows of it)."""

    label: str
    frames_in: int = 0
    frames_out: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: list[Frame] = field(default_factory=list)

    async def end(self, reason: str) -> None:
        self.finished.set()

    async def deliver(self, frame: Frame) -> bool:
        self.delivered.append(frame)
        return True

    def reasons(self) -> list[str]:
        return [f.reason for f in self.delivered if isinstance(f, CallEndReasonFrame)]


async def test_a_call_this_server_streams_is_recorded_as_transferred(twilio: FakeTwilio):
    sid = await live_call(twilio)
    registry = CallRegistry()
    streamed = StreamedCall(sid)
    registry.register(streamed)
    assert find_live_call(sid) is streamed
    await transfer_call(settings_for(twilio), sid, FRONT_DESK)
    # Declared into the live call before Twilio was asked: Twilio's stop cannot claim it.
    assert streamed.reasons() == ["transferred"]
    assert twilio.calls[sid].transferred_to == FRONT_DESK


async def test_a_refused_transfer_withdraws_the_declared_reason(twilio: FakeTwilio):
    sid = await live_call(twilio)
    registry = CallRegistry()
    streamed = StreamedCall(sid)
    registry.register(streamed)
    twilio.rate_limited = True
    with pytest.raises(TwilioRestError) as raised:
        await transfer_call(settings_for(twilio), sid, FRONT_DESK)
    assert raised.value.kind == "rate_limited"
    assert streamed.reasons() == ["transferred", ""]  # "" withdraws: the call goes on
    assert twilio.calls[sid].transferred_to is None


async def test_calls_not_streamed_here_or_over_are_left_alone(twilio: FakeTwilio):
    sid = await live_call(twilio)
    registry = CallRegistry()
    other, over = StreamedCall("CA" + "7" * 32), StreamedCall(sid)
    over.finished.set()
    registry.register(other)
    registry.register(over)
    assert find_live_call(sid) is None and find_live_call("") is None
    await transfer_call(settings_for(twilio), sid, FRONT_DESK)
    assert other.delivered == [] and over.delivered == []
    assert twilio.calls[sid].transferred_to == FRONT_DESK
