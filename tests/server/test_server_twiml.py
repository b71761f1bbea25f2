"""TwiML built with the twilio SDK: the call is connected to our Media Streams socket."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from voiceagent.server.twiml import connect_stream_twiml, media_stream_url, stream_parameters


def test_caller_facts_travel_as_stream_parameters() -> None:
    form = {"From": "+14155550100", "To": "+15550199", "CallSid": "CA42", "AccountSid": "AC1"}
    xml = connect_stream_twiml(media_stream_url("voice.example.com"), stream_parameters(form))
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    (connect,) = list(root)
    assert connect.tag == "Connect"
    (stream,) = list(connect)
    assert stream.get("url") == "wss://voice.example.com/media"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"From": "+14155550100", "To": "+15550199", "CallSid": "CA42"}


def test_missing_fields_are_left_out_and_values_are_escaped() -> None:
    xml = connect_stream_twiml("wss://h/media", stream_parameters({"From": 'a<b>&"c', "To": ""}))
    stream = ET.fromstring(xml).find("Connect/Stream")
    assert stream is not None
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"From": 'a<b>&"c'}
