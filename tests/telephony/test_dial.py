"""Placing a call: what Twilio is asked, what is refused before asking, and ``voiceagent dial``."""

from __future__ import annotations

import argparse
import io
import xml.etree.ElementTree as ET

import pytest

from tests.telephony.accounts import ACCOUNT, OUR_NUMBER, PERSON, TOKEN
from tests.telephony.fake_twilio import Callee, FakeTwilio
from voiceagent.settings import Settings
from voiceagent.storage import open_store
from voiceagent.telephony import InvalidNumberError, place_call
from voiceagent.telephony.cli import run_dial_command
from voiceagent.transports.twilio.rest import TwilioRestError

HOST = "agent.example.com"


def settings_for(twilio: FakeTwilio, **telephony) -> Settings:
    return Settings(
        server={"public_host": HOST, "twilio_auth_token": TOKEN},
        twilio={"account_sid": ACCOUNT, "api_base_url": twilio.base_url, "timeout_s": 2.0},
        telephony={"from_number": OUR_NUMBER, **telephony},
    )


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    stream = ET.fromstring(twiml).find("Connect/Stream")
    assert stream is not None, twiml
    return stream.get("url", ""), {p.get("name", ""): p.get("value", "") for p in stream}


async def test_the_call_connects_to_our_media_stream_and_reports_its_progress(twilio: FakeTwilio):
    placed = await place_call(settings_for(twilio), "+1 (555) 010-0199")
    assert placed.sid in twilio.calls and placed.status == "queued"
    assert (placed.to, placed.from_) == (PERSON, OUR_NUMBER)
    [(method, path, form)] = twilio.requests
    assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    assert form["To"] == PERSON and form["From"] == OUR_NUMBER
    url, parameters = stream_of(form["Twiml"])
    assert url == f"wss://{HOST}/media"
    assert parameters == {
        "Direction": "outbound-api",
        "From": OUR_NUMBER,
        "To": PERSON,
        "AnsweringMachine": "agent",
        "VoicemailAction": "leave_message",
    }
    assert form["StatusCallback"] == f"https://{HOST}/twilio/status"
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert form["StatusCallbackMethod"] == "POST" and form["Timeout"] == "30"
    assert "MachineDetection" not in form  # the agent listens for machines itself


@pytest.mark.parametrize(
    ("action", "mode"), [("leave_message", "DetectMessageEnd"), ("hang_up", "Enable")]
)
async def test_twilio_amd_is_asynchronous_and_fits_the_voicemail_action(
    twilio: FakeTwilio, action: str, mode: str
):
    settings = settings_for(twilio, machine_detection="twilio", voicemail_action=action)
    await place_call(settings, PERSON)
    form = twilio.requests[0][2]
    assert form["MachineDetection"] == mode
    assert form["AsyncAmd"] == "true"
    assert form["AsyncAmdStatusCallback"] == f"https://{HOST}/twilio/amd"
    assert form["MachineDetectionTimeout"] == "30"
    assert stream_of(form["Twiml"])[1]["AnsweringMachine"] == "twilio"


async def test_bad_input_is_refused_before_twilio_is_asked(twilio: FakeTwilio):
    with pytest.raises(InvalidNumberError, match="E.164"):
        await place_call(settings_for(twilio), "555-0199")
    with pytest.raises(ValueError, match="PUBLIC_HOST"):
        no_host = settings_for(twilio).model_copy(
            update={"server": settings_for(twilio).server.model_copy(update={"public_host": None})}
        )
        await place_call(no_host, PERSON)
    with pytest.raises(ValueError, match="caller id"):
        await place_call(settings_for(twilio, from_number=None), PERSON)
    assert not twilio.requests


async def test_twilio_refusals_arrive_named(twilio: FakeTwilio):
    twilio.rate_limited = True
    with pytest.raises(TwilioRestError) as raised:
        await place_call(settings_for(twilio), PERSON)
    assert raised.value.kind == "rate_limited"
    twilio.rate_limited = False
    with pytest.raises(TwilioRestError) as raised:
        await place_call(settings_for(twilio), PERSON, from_="+15550100777")  # not our number
    assert raised.value.kind == "invalid_number"
    assert not twilio.calls


def dial_args(**over) -> argparse.Namespace:
    args = {
        "to": PERSON,
        "from_": None,
        "machine_detection": None,
        "voicemail": None,
        "public_host": None,
        "wait": False,
        "wait_timeout": 10.0,
    }
    return argparse.Namespace(**{**args, **over})


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, twilio: FakeTwilio) -> None:
    for name, value in {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM_NUMBER": OUR_NUMBER,
        "PUBLIC_HOST": HOST,
        "VOICEAGENT_TWILIO__API_BASE_URL": twilio.base_url,
    }.items():
        monkeypatch.setenv(name, value)


async def test_voiceagent_dial_prints_the_call_and_follows_it(twilio: FakeTwilio, environment):
    twilio.callees[PERSON] = Callee(answer="busy")
    out = io.StringIO()
    code = await run_dial_command(dial_args(wait=True), out)
    lines = out.getvalue().splitlines()
    [sid] = twilio.calls
    assert lines[0] == (
        f"call {sid}: queued, to {PERSON} from {OUR_NUMBER} (answering machines: agent, "
        "leave_message)"
    )
    assert lines[1] == f"follow it: voiceagent calls show {sid}"
    seen = [line.removeprefix(f"call {sid}: ") for line in lines[2:]]
    assert seen[-1] == "busy"  # each change once, in Twilio's order
    assert seen[:-1] == [s for s in ("queued", "initiated", "ringing") if s in seen[:-1]]
    assert code == 1  # the call did not happen
    # The dialer started the call's record (no server here to add Twilio's callbacks).
    store = open_store(Settings.from_env().storage, create=False)
    try:
        record = store.find_call(sid)
    finally:
        store.close()
    assert record is not None
    assert [(e.status, e.source) for e in record.timeline] == [("queued", "rest")]
    assert record.timeline[0].data == {
        "machine_detection": "agent",
        "voicemail_action": "leave_message",
    }
    assert (record.call.direction, record.call.to_number) == ("outbound-api", PERSON)
    assert abs(record.call.started_at - twilio.calls[sid].created) < 1.0  # Twilio's stamp


async def test_voiceagent_dial_says_what_went_wrong(twilio: FakeTwilio, environment, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "stale-token")
    out = io.StringIO()
    assert await run_dial_command(dial_args(), out) == 2
    assert out.getvalue().startswith("error: no call was placed: Twilio refused the credentials")
    out = io.StringIO()
    assert await run_dial_command(dial_args(to="12345"), out) == 2
    assert "E.164" in out.getvalue()
    assert not twilio.calls


def calls_stored() -> int:
    """How many calls the default store holds (0 when nothing was ever recorded)."""
    try:
        store = open_store(Settings.from_env().storage, create=False)
    except FileNotFoundError:
        return 0
    try:
        return len(store.recent_calls(100))
    finally:
        store.close()


async def test_voiceagent_dial_names_twilios_refusals_and_records_nothing(
    twilio: FakeTwilio, environment
):
    twilio.rate_limited = True  # 429 / 20429
    out = io.StringIO()
    assert await run_dial_command(dial_args(), out) == 2
    assert out.getvalue().startswith("error: no call was placed: Twilio's rate limit was hit")
    assert "try again in a moment" in out.getvalue()
    twilio.rate_limited = False
    out = io.StringIO()  # 400 / 21210: not one of the account's numbers
    assert await run_dial_command(dial_args(from_="+15550100777"), out) == 2
    assert out.getvalue().startswith(
        "error: no call was placed: Twilio cannot dial it: 'From' number is not verified"
    )
    assert "Twilio error 21210" in out.getvalue()
    assert not twilio.calls and calls_stored() == 0  # no call, and no half a record of one
