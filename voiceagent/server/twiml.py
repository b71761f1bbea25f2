"""TwiML for the voice webhook: connect the call to our Media Streams WebSocket.

``<Connect><Stream>`` ignores query strings, so caller facts travel as ``<Parameter>``s and
arrive in the stream's ``start.customParameters``.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import VoiceResponse

MEDIA_PATH = "/media"
FORWARDED_PARAMETERS = ("From", "To", "CallSid")
"""Webhook form fields passed on to the stream as custom parameters."""


def media_stream_url(host: str, path: str = MEDIA_PATH) -> str:
    """The ``wss://`` URL Twilio opens for the call's audio (Twilio requires TLS)."""
    return f"wss://{host}{path}"


def stream_parameters(form: Mapping[str, str]) -> dict[str, str]:
    """The forwarded webhook fields that are present and non-empty, in a fixed order."""
    params: dict[str, str] = {}
    for name in FORWARDED_PARAMETERS:
        value = form.get(name)
        if isinstance(value, str) and value:
            params[name] = value
    return params


def connect_stream_twiml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """``<Response><Connect><Stream url=…><Parameter …/></Stream></Connect></Response>``."""
    response = VoiceResponse()
    stream = response.connect().stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    return response.to_xml()
