"""The twilio SDK's async client against a fake of Twilio's REST API: requests and named errors."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.telephony.accounts import ACCOUNT, OUR_NUMBER, PERSON, TOKEN
from tests.telephony.fake_twilio import FakeTwilio
from voiceagent.transports.twilio.rest import TwilioRestClient, TwilioRestError

TWIML = "<Response><Say>hi</Say></Response>"


@pytest_asyncio.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(ACCOUNT, TOKEN, numbers=(OUR_NUMBER,)) as fake:
        yield fake


def client(twilio: FakeTwilio, token: str = TOKEN) -> TwilioRestClient:
    return TwilioRestClient(ACCOUNT, token, base_url=twilio.base_url, timeout_s=2.0)


async def test_a_call_is_created_with_basic_auth_and_form_fields(twilio: FakeTwilio):
    rest = client(twilio)
    call = await rest.create_call(
        to=PERSON,
        from_=OUR_NUMBER,
        twiml=TWIML,
        status_callback="https://agent.example.com/twilio/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        timeout=25,
    )
    assert call.sid.startswith("CA") and len(call.sid) == 34
    assert (call.status, call.to, call.from_, call.direction) == (
        "queued",
        PERSON,
        OUR_NUMBER,
        "outbound-api",
    )
    method, path, form = twilio.requests[0]
    assert (method, path) == ("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json")
    assert form["To"] == PERSON and form["From"] == OUR_NUMBER and form["Twiml"] == TWIML
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert form["Timeout"] == "25"
    assert rest.stats.created == 1


async def test_wrong_credentials_say_which_settings_to_check(twilio: FakeTwilio):
    rest = client(twilio, token="wrong")
    with pytest.raises(TwilioRestError) as raised:
        await rest.create_call(to=PERSON, from_=OUR_NUMBER, twiml=TWIML)
    error = raised.value
    assert (error.kind, error.status, error.code) == ("auth", 401, 20003)
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in str(error)
    assert rest.stats.failures_by_kind == {"auth": 1}


async def test_an_invalid_number_is_named_with_twilios_code(twilio: FakeTwilio):
    rest = client(twilio)
    with pytest.raises(TwilioRestError) as raised:
        await rest.create_call(to="+1555", from_=OUR_NUMBER, twiml=TWIML)
    assert (raised.value.kind, raised.value.code) == ("invalid_number", 21211)
    assert "invalid 'To' number" in str(raised.value) and "+1555" in str(raised.value)
    with pytest.raises(TwilioRestError) as raised:
        await rest.create_call(to=PERSON, from_="+15559999999", twiml=TWIML)
    assert (raised.value.kind, raised.value.code) == ("invalid_number", 21210)
    assert not twilio.calls  # nothing was placed


async def test_a_rate_limit_says_to_try_again(twilio: FakeTwilio):
    twilio.rate_limited = True
    rest = client(twilio)
    with pytest.raises(TwilioRestError) as raised:
        await rest.create_call(to=PERSON, from_=OUR_NUMBER, twiml=TWIML)
    assert (raised.value.kind, raised.value.status, raised.value.code) == (
        "rate_limited",
        429,
        20429,
    )
    assert "try again" in str(raised.value)


async def test_updating_or_hanging_up_an_unknown_call(twilio: FakeTwilio):
    rest = client(twilio)
    sid = "CA" + "0" * 32
    with pytest.raises(TwilioRestError) as raised:
        await rest.update_call(sid, twiml=TWIML)
    assert (raised.value.kind, raised.value.code) == ("not_found", 20404)
    assert await rest.hang_up(sid) is False  # never raises
    assert rest.stats.failures_by_kind == {"not_found": 2}
    method, path, form = twilio.requests[-1]
    assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json" and form == {
        "Status": "completed"
    }


async def test_hang_up_of_a_live_call(twilio: FakeTwilio):
    rest = client(twilio)
    call = await rest.create_call(to=PERSON, from_=OUR_NUMBER, twiml=TWIML)
    assert await rest.hang_up(call.sid) is True
    assert rest.stats.hang_ups == 1
    assert twilio.calls[call.sid].hung_up_by_api


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_an_unreachable_api_is_a_network_error():
    rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(TwilioRestError) as raised:
        await rest.create_call(to=PERSON, from_=OUR_NUMBER, twiml=TWIML)
    assert raised.value.kind == "network" and "cannot reach Twilio" in str(raised.value)


async def test_a_silent_api_is_a_timeout():
    """A server that accepts the connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        port = server.getsockname()[1]
        rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=f"http://127.0.0.1:{port}", timeout_s=0.3)
        with pytest.raises(TwilioRestError) as raised:
            await rest.update_call("CA" + "1" * 32, status="completed")
        assert raised.value.kind == "timeout"
    finally:
        server.close()
