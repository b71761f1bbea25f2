"""Numbers, callback forms, end reasons and transfer TwiML: the small pure pieces."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.telephony.issue_end_reasons import ISSUE_END_REASONS
from voiceagent.settings import Settings
from voiceagent.telephony.callbacks import (
    MalformedCallback,
    parse_amd_callback,
    parse_status_callback,
)
from voiceagent.telephony.end_reason import END_REASONS, from_transport, from_twilio_status
from voiceagent.telephony.numbers import InvalidNumberError, check_transfer_target, normalize_e164
from voiceagent.telephony.transfer import dial_twiml

SID = "CA" + "e" * 32


def test_numbers_are_normalized_to_e164_and_sip_uris_kept():
    assert normalize_e164(" +1 (555) 010-0199 ") == "+15550100199"
    assert check_transfer_target("+44 20 7946 0958") == "+442079460958"
    assert check_transfer_target("sip:desk@pbx.example.com") == "sip:desk@pbx.example.com"
    assert check_transfer_target("sips:desk@10.0.0.5:5061;transport=tls")
    for bad in ("5550100199", "+0123456789", "+1555", "tel:+15550100199", "sip:nohost", "desk"):
        with pytest.raises(InvalidNumberError):
            check_transfer_target(bad)


def test_transfer_targets_are_checked_when_settings_load():
    settings = Settings.from_env(
        {"VOICEAGENT_TELEPHONY__TRANSFER_TARGETS": "front desk=+15550100123,billing=sip:b@pbx.io"}
    )
    assert settings.telephony.transfer_targets == {
        "front desk": "+15550100123",
        "billing": "sip:b@pbx.io",
    }
    with pytest.raises(ValueError, match="E.164"):
        Settings.from_env({"VOICEAGENT_TELEPHONY__TRANSFER_TARGETS": "front desk=555-0123"})


def test_transfer_twiml_dials_a_number_or_a_sip_uri():
    number = ET.fromstring(dial_twiml("+15550100123", caller_id="+15550100100"))
    assert number.find("Dial").get("callerId") == "+15550100100"
    assert number.find("Dial/Number").text == "+15550100123"
    sip = ET.fromstring(dial_twiml("sip:desk@pbx.example.com", say="Connecting you now."))
    assert sip.find("Say").text == "Connecting you now."
    assert sip.find("Dial/Sip").text == "sip:desk@pbx.example.com"
    with pytest.raises(InvalidNumberError):
        dial_twiml("front desk")


def test_a_status_callback_is_read_field_by_field():
    event = parse_status_callback(
        {
            "CallSid": SID,
            "AccountSid": "AC" + "1" * 32,
            "CallStatus": "completed",
            "Timestamp": "Fri, 04 Dec 2026 10:00:42 +0000",
            "SequenceNumber": "3",
            "CallDuration": "37",
            "Direction": "outbound-api",
            "From": "+15550100100",
            "To": "+15550100199",
        }
    )
    assert (event.status, event.sequence, event.duration_s) == ("completed", 3, 37)
    assert event.at == 1796378442.0
    assert parse_status_callback({"CallSid": SID, "CallStatus": "ringing"}, now=5.0).at == 5.0


@pytest.mark.parametrize(
    ("form", "names"),
    [
        ({"CallStatus": "ringing"}, "CallSid"),
        ({"CallSid": SID}, "CallStatus"),
        ({"CallSid": SID, "CallStatus": "ringing", "AccountSid": "nope"}, "AccountSid"),
        ({"CallSid": SID, "CallStatus": "ringing", "CallDuration": "4.5"}, "CallDuration"),
        ({"CallSid": SID, "CallStatus": "ringing", "From": "x" * 300}, "From"),
    ],
)
def test_malformed_status_callbacks_name_the_field(form: dict, names: str):
    with pytest.raises(MalformedCallback, match=names):
        parse_status_callback(form)


def test_an_amd_callback_and_its_checks():
    result = parse_amd_callback(
        {"CallSid": SID, "AnsweredBy": "machine_end_beep", "MachineDetectionDuration": "4210"}
    )
    assert (result.answered_by, result.detection_ms) == ("machine_end_beep", 4210)
    with pytest.raises(MalformedCallback, match="AnsweredBy"):
        parse_amd_callback({"CallSid": SID, "AnsweredBy": "dog"})


def test_every_way_a_call_ends_has_one_name():
    assert from_transport("stop") == "caller_hung_up"
    assert from_transport("ended") == "agent_hung_up"
    assert from_transport("server_shutdown") == "server_shutdown"
    for lost in ("socket_closed", "cancelled", "protocol_errors", "bad_media_format"):
        assert from_transport(lost) == "error"
    assert from_transport("voicemail") == "voicemail"  # already a reason
    # A browser softphone call (no Twilio account) ends by its page closing the socket.
    assert from_transport("socket_closed", twilio=False) == "caller_hung_up"
    assert [from_twilio_status(s) for s in ("busy", "no-answer", "failed", "canceled")] == [
        "busy",
        "no_answer",
        "failed",
        "canceled",
    ]
    assert from_twilio_status("completed") == "error"  # answered, but never streamed to us
    assert from_twilio_status("ringing") is None
    assert set(END_REASONS) == ISSUE_END_REASONS


def test_the_calls_command_knows_every_status_and_end_reason():
    from voiceagent.storage.cli import TWILIO_STATUSES
    from voiceagent.telephony.callbacks import CALL_STATUSES

    assert set(TWILIO_STATUSES) == CALL_STATUSES
