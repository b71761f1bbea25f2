"""Twilio Media Streams wire format: parse inbound JSON, build outbound JSON.

Inbound events (Twilio → server): ``connected``, ``start``, ``media``, ``dtmf``, ``mark``,
``stop``. Outbound (server → Twilio): ``media``, ``mark``, ``clear``. Parsing is strict
about what the transport relies on and raises :class:`ProtocolError` with a ``kind``
(for counters) and a human ``reason`` (for logs). Media payloads are opaque bytes here; their
format (:mod:`~voiceagent.transports.twilio.line_format`) is the stream's, declared in ``start``.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from voiceagent.transports.twilio.line_format import MULAW_8K, LineFormat

ULAW_RATE = MULAW_8K.rate
MAX_MEDIA_BYTES = MULAW_8K.bytes_per_s  # one second of 8 kHz μ-law
TWILIO_FRAME_BYTES = MULAW_8K.frame_bytes  # 20 ms
DTMF_DIGITS = frozenset("0123456789*#")

ERROR_KINDS = (
    "non_json",
    "binary",
    "unknown_event",
    "missing_field",
    "wrong_stream_sid",
    "media_before_start",
    "bad_base64",
    "bad_payload_size",
    "too_large",
    "flood",
    "bad_value",
)


class ProtocolError(Exception):
    """An inbound message that breaks the Media Streams protocol.

    Attributes:
        kind: one of :data:`ERROR_KINDS`.
        reason: what exactly was wrong, for the log.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass(slots=True)
class Connected:
    """The first message on the socket."""

    protocol: str = "Call"
    version: str = ""


@dataclass(slots=True)
class Start:
    """The stream started: identifiers, tracks, format and the TwiML ``<Parameter>`` values."""

    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: list[str] = field(default_factory=list)
    media_format: dict[str, Any] = field(default_factory=dict)
    custom_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Media:
    """One chunk of caller audio, in the stream's line format (Twilio: μ-law, 8 kHz)."""

    payload: bytes
    track: str
    chunk: int
    timestamp_ms: int | None
    """Twilio's stream time of the chunk (ms since the stream started); None if absent."""


@dataclass(slots=True)
class Dtmf:
    """A keypad digit pressed by the caller."""

    digit: str


@dataclass(slots=True)
class Mark:
    """Echo of a mark we sent: the audio before it finished playing (or was cleared)."""

    name: str


@dataclass(slots=True)
class Stop:
    """The stream ended (caller hung up or the call was redirected)."""

    call_sid: str


Inbound = Connected | Start | Media | Dtmf | Mark | Stop


def _require(obj: dict[str, Any], key: str, where: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise ProtocolError("missing_field", f"{where} has no '{key}'")
    return value


def _require_dict(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = _require(obj, key, where)
    if not isinstance(value, dict):
        raise ProtocolError("bad_value", f"{where}.{key} must be an object")
    return value


def _require_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = _require(obj, key, where)
    if not isinstance(value, str):
        raise ProtocolError("bad_value", f"{where}.{key} must be a string")
    return value


def _optional_int(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProtocolError(
            "bad_value", f"{where}.{key} is not an integer: {value!r:.40}"
        ) from None


def _check_sid(message: dict[str, Any], event: str, stream_sid: str | None) -> None:
    if stream_sid is None:
        raise ProtocolError("media_before_start", f"'{event}' before 'start'")
    sid = message.get("streamSid")
    if sid is None:
        raise ProtocolError("missing_field", f"'{event}' has no 'streamSid'")
    if sid != stream_sid:
        raise ProtocolError("wrong_stream_sid", f"'{event}' for stream {sid!r:.40}")


def _parse_start(message: dict[str, Any], stream_sid: str | None) -> Start:
    if stream_sid is not None:
        raise ProtocolError("bad_value", "second 'start' on one stream")
    start = _require_dict(message, "start", "start")
    sid = start.get("streamSid") or message.get("streamSid")
    if not isinstance(sid, str) or not sid:
        raise ProtocolError("missing_field", "start has no 'streamSid'")
    call_sid = _require_str(start, "callSid", "start")
    account_sid = start.get("accountSid", "")
    tracks = start.get("tracks", ["inbound"])
    media_format = start.get("mediaFormat", {})
    params = start.get("customParameters") or {}
    if not isinstance(account_sid, str):
        raise ProtocolError("bad_value", "start.accountSid must be a string")
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise ProtocolError("bad_value", "start.tracks must be a list of strings")
    if not isinstance(media_format, dict):
        raise ProtocolError("bad_value", "start.mediaFormat must be an object")
    if not isinstance(params, dict):
        raise ProtocolError("bad_value", "start.customParameters must be an object")
    return Start(
        stream_sid=sid,
        call_sid=call_sid,
        account_sid=account_sid,
        tracks=tracks,
        media_format=media_format,
        custom_parameters={str(k): str(v) for k, v in params.items()},
    )


def _parse_media(message: dict[str, Any], max_bytes: int) -> Media:
    media = _require_dict(message, "media", "media")
    payload = _require_str(media, "payload", "media")
    track = media.get("track", "inbound")
    if not isinstance(track, str):
        raise ProtocolError("bad_value", "media.track must be a string")
    size = len(payload)
    # Base64 of n bytes is 4*ceil(n/3) characters: reject oversize before decoding.
    if size == 0 or size > (max_bytes + 2) // 3 * 4:
        raise ProtocolError("bad_payload_size", f"media payload of {size} base64 characters")
    try:
        audio = binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError) as e:
        raise ProtocolError("bad_base64", f"media payload is not base64 ({e})") from None
    if not audio or len(audio) > max_bytes:
        raise ProtocolError("bad_payload_size", f"media payload of {len(audio)} bytes")
    return Media(
        payload=audio,
        track=track,
        chunk=_optional_int(media, "chunk", "media"),
        timestamp_ms=(
            None if media.get("timestamp") is None else _optional_int(media, "timestamp", "media")
        ),
    )


def parse_inbound(
    text: str, *, stream_sid: str | None, max_media_bytes: int = MAX_MEDIA_BYTES
) -> Inbound:
    """Parse one Twilio → server text message.

    Args:
        text: the websocket text frame.
        stream_sid: the stream's SID once ``start`` was seen, else ``None``.
        max_media_bytes: the largest media payload accepted (decoded); one second of the
            stream's audio.

    Raises:
        ProtocolError: for anything that is not a valid message of this stream.
    """
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("non_json", f"not JSON: {text[:40]!r}") from None
    if not isinstance(message, dict):
        raise ProtocolError("non_json", f"JSON {type(message).__name__}, not an object")
    event = message.get("event")
    if event is None:
        raise ProtocolError("missing_field", "message has no 'event'")
    if event == "media":
        _check_sid(message, event, stream_sid)
        return _parse_media(message, max_media_bytes)
    if event == "mark":
        _check_sid(message, event, stream_sid)
        return Mark(name=_require_str(_require_dict(message, "mark", "mark"), "name", "mark"))
    if event == "dtmf":
        _check_sid(message, event, stream_sid)
        digit = _require_str(_require_dict(message, "dtmf", "dtmf"), "digit", "dtmf")
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise ProtocolError("bad_value", f"dtmf digit {digit!r:.20}")
        return Dtmf(digit=digit)
    if event == "start":
        return _parse_start(message, stream_sid)
    if event == "stop":
        _check_sid(message, event, stream_sid)
        stop = message.get("stop")
        call_sid = stop.get("callSid", "") if isinstance(stop, dict) else ""
        return Stop(call_sid=call_sid if isinstance(call_sid, str) else "")
    if event == "connected":
        protocol = message.get("protocol", "Call")
        version = message.get("version", "")
        return Connected(protocol=str(protocol), version=str(version))
    raise ProtocolError("unknown_event", f"unknown event {event!r:.40}")


def check_media_format(media_format: dict[str, Any], expected: LineFormat = MULAW_8K) -> str | None:
    """Return why a ``start.mediaFormat`` is unusable, or ``None`` if it declares ``expected``."""
    if expected.matches(media_format):
        return None
    encoding = media_format.get("encoding")
    rate = media_format.get("sampleRate")
    channels = media_format.get("channels", 1)
    return (
        f"unsupported media format encoding={encoding!r} sampleRate={rate!r} "
        f"channels={channels!r}; this stream carries {expected.encoding} {expected.rate} Hz mono"
    )


def media_message(stream_sid: str, audio: bytes) -> str:
    """Outbound ``media``: raw line audio (Twilio: 8 kHz μ-law), base64, no header."""
    payload = binascii.b2a_base64(audio, newline=False).decode("ascii")
    sid = json.dumps(stream_sid)
    return f'{{"event":"media","streamSid":{sid},"media":{{"payload":"{payload}"}}}}'


def mark_message(stream_sid: str, name: str) -> str:
    """Outbound ``mark``: Twilio echoes it once the audio sent before it has played."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """Outbound ``clear``: flush Twilio's playback buffer (it echoes all pending marks)."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})
