"""The Media Streams wire format, message by message, as Twilio sends and expects it."""

from __future__ import annotations

import base64
import json

import pytest

from voiceagent.transports.twilio.protocol import (
    Connected,
    Dtmf,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    check_media_format,
    clear_message,
    mark_message,
    media_message,
    parse_inbound,
)

from .conftest import TwilioScript, tone_ulaw

SID = "MZ0001"


def expect_error(kind: str, text: str, stream_sid: str | None = SID) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_inbound(text, stream_sid=stream_sid)
    assert info.value.kind == kind, info.value.reason
    assert info.value.reason
    return info.value


def test_a_call_from_connected_to_stop_parses() -> None:
    twilio = TwilioScript()
    assert parse_inbound(twilio.connected(), stream_sid=None) == Connected("Call", "1.0.0")

    start = parse_inbound(twilio.start(clinic="bright-smile", lang="en"), stream_sid=None)
    assert start == Start(
        stream_sid=SID,
        call_sid="CA0001",
        account_sid="AC0001",
        tracks=["inbound"],
        media_format={"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        custom_parameters={"clinic": "bright-smile", "lang": "en"},
    )

    ulaw = tone_ulaw(20)
    media = parse_inbound(twilio.media(ulaw), stream_sid=SID)
    assert media == Media(payload=ulaw, track="inbound", chunk=1, timestamp_ms=0)
    assert parse_inbound(twilio.media(ulaw), stream_sid=SID).timestamp_ms == 20

    assert parse_inbound(twilio.dtmf("#"), stream_sid=SID) == Dtmf("#")
    assert parse_inbound(twilio.mark("a1.2"), stream_sid=SID) == Mark("a1.2")
    assert parse_inbound(twilio.stop(), stream_sid=SID) == Stop("CA0001")


def test_a_twilio_sized_frame_is_160_bytes_in_216_characters() -> None:
    message = json.loads(TwilioScript().media(tone_ulaw(20)))
    assert len(message["media"]["payload"]) == 216
    assert len(parse_inbound(json.dumps(message), stream_sid=SID).payload) == 160


def test_custom_parameter_values_become_strings() -> None:
    message = json.loads(TwilioScript().start())
    message["start"]["customParameters"] = {"n": 3}
    assert parse_inbound(json.dumps(message), stream_sid=None).custom_parameters == {"n": "3"}


@pytest.mark.parametrize("text", ["not json", "{", "", "\x00\x01", '{"event": "media", '])
def test_garbage_is_non_json(text: str) -> None:
    expect_error("non_json", text)


def test_json_that_is_not_an_object_is_non_json() -> None:
    expect_error("non_json", "[1, 2]")
    expect_error("non_json", '"media"')


def test_unknown_and_missing_events() -> None:
    expect_error("unknown_event", '{"event": "dance", "streamSid": "MZ0001"}')
    expect_error("unknown_event", '{"event": 7}')
    expect_error("missing_field", '{"streamSid": "MZ0001"}')


def test_messages_for_another_stream_are_refused() -> None:
    other = TwilioScript(stream_sid="MZ9999")
    expect_error("wrong_stream_sid", other.media(tone_ulaw(20)))
    expect_error("wrong_stream_sid", other.mark("a1.1"))
    expect_error("wrong_stream_sid", other.dtmf("1"))
    expect_error("wrong_stream_sid", other.stop())
    no_sid = json.loads(other.media(tone_ulaw(20)))
    del no_sid["streamSid"]
    expect_error("missing_field", json.dumps(no_sid))


def test_nothing_but_start_may_come_before_start() -> None:
    twilio = TwilioScript()
    for text in (twilio.media(tone_ulaw(20)), twilio.dtmf("1"), twilio.mark("a"), twilio.stop()):
        expect_error("media_before_start", text, stream_sid=None)


def test_a_second_start_is_refused() -> None:
    expect_error("bad_value", TwilioScript().start())


@pytest.mark.parametrize(
    ("mutate", "kind"),
    [
        (lambda m: m["start"].pop("callSid"), "missing_field"),
        (lambda m: (m["start"].pop("streamSid"), m.pop("streamSid")), "missing_field"),
        (lambda m: m.pop("start"), "missing_field"),
        (lambda m: m.__setitem__("start", "nope"), "bad_value"),
        (lambda m: m["start"].__setitem__("tracks", "inbound"), "bad_value"),
        (lambda m: m["start"].__setitem__("customParameters", ["x"]), "bad_value"),
        (lambda m: m["start"].__setitem__("mediaFormat", "mulaw"), "bad_value"),
    ],
)
def test_broken_start_messages(mutate, kind: str) -> None:
    message = json.loads(TwilioScript().start())
    mutate(message)
    expect_error(kind, json.dumps(message), stream_sid=None)


def _media(payload: object, **extra: object) -> str:
    media = {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": payload, **extra}
    return json.dumps({"event": "media", "streamSid": SID, "media": media})


def test_broken_media_messages() -> None:
    expect_error("bad_base64", _media("!!!not base64!!!"))
    expect_error("bad_base64", _media("abc"))  # truncated
    expect_error("bad_payload_size", _media(""))
    too_long = base64.b64encode(bytes(8001)).decode()
    expect_error("bad_payload_size", _media(too_long))
    expect_error("bad_payload_size", _media(base64.b64encode(bytes(12000)).decode()))
    expect_error("missing_field", json.dumps({"event": "media", "streamSid": SID, "media": {}}))
    expect_error("missing_field", json.dumps({"event": "media", "streamSid": SID}))
    expect_error("bad_value", _media(123))
    expect_error("bad_value", _media("AAAA", chunk="one"))
    expect_error("bad_value", _media("AAAA", track=5))


def test_one_second_of_audio_is_the_largest_media_payload() -> None:
    one_second = base64.b64encode(bytes(8000)).decode()
    assert len(parse_inbound(_media(one_second), stream_sid=SID).payload) == 8000


def test_broken_dtmf_and_mark_messages() -> None:
    expect_error("bad_value", TwilioScript().dtmf("A"))
    expect_error("bad_value", TwilioScript().dtmf("12"))
    bad_mark = {"event": "mark", "streamSid": SID, "mark": {}}
    expect_error("missing_field", json.dumps(bad_mark))
    bad_mark["mark"] = {"name": 5}
    expect_error("bad_value", json.dumps(bad_mark))


def test_media_format_check_names_the_problem() -> None:
    mulaw = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert check_media_format(mulaw) is None
    problem = check_media_format({"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1})
    assert problem is not None and "audio/x-l16" in problem and "16000" in problem


def test_outbound_media_shape() -> None:
    ulaw = tone_ulaw(20)
    message = json.loads(media_message(SID, ulaw))
    assert message == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": base64.b64encode(ulaw).decode()},
    }
    # Quoting is JSON-safe even for odd SIDs.
    assert json.loads(media_message('M"Z', b"\xff"))["streamSid"] == 'M"Z'


def test_outbound_mark_and_clear_shapes() -> None:
    assert json.loads(mark_message(SID, "a3.1")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "a3.1"},
    }
    assert json.loads(clear_message(SID)) == {"event": "clear", "streamSid": SID}
