"""Twilio's call progress and AMD callbacks, parsed strictly (the form fields Twilio posts).

A status callback (``StatusCallback`` of a call) carries ``CallSid``, ``AccountSid``,
``CallStatus``, ``Timestamp`` (RFC 2822), ``SequenceNumber``, ``Direction``, ``From``, ``To``
and, once the call is over, ``CallDuration``. An AMD callback (``AsyncAmdStatusCallback``)
carries ``CallSid``, ``AccountSid``, ``AnsweredBy`` and ``MachineDetectionDuration`` (ms).
Anything else malformed raises :class:`MalformedCallback` naming the field.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

STATUS_PATH = "/twilio/status"
"""Where Twilio posts an outbound call's progress (its ``StatusCallback``)."""
AMD_PATH = "/twilio/amd"
"""Where Twilio posts its answering machine detection result (``AsyncAmdStatusCallback``)."""

CALL_STATUSES = frozenset(
    (
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
    )
)
ANSWERED_BY = frozenset(
    (
        "human",
        "machine_start",
        "machine_end_beep",
        "machine_end_silence",
        "machine_end_other",
        "fax",
        "unknown",
    )
)
MACHINE_ANSWERS = frozenset(a for a in ANSWERED_BY if a.startswith("machine_"))
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_MAX_FIELD = 256


class MalformedCallback(ValueError):
    """A callback Twilio would not send: a missing or invalid field."""


@dataclass(frozen=True)
class StatusCallback:
    """One call progress event."""

    call_sid: str
    status: str
    at: float
    """Unix time Twilio stamped the event with (the arrival time when it sent none)."""
    sequence: int | None = None
    direction: str = ""
    from_number: str = ""
    to_number: str = ""
    duration_s: int | None = None
    account_sid: str = ""


@dataclass(frozen=True)
class AmdCallback:
    """Twilio's answering machine detection result for one call."""

    call_sid: str
    answered_by: str
    detection_ms: int | None = None
    account_sid: str = ""


def _field(form: Mapping[str, str], name: str, *, required: bool = False) -> str:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise MalformedCallback(f"missing {name}")
        return ""
    if not isinstance(value, str) or len(value) > _MAX_FIELD:
        raise MalformedCallback(f"{name} is not a short text field")
    return value


def _int(form: Mapping[str, str], name: str) -> int | None:
    value = _field(form, name)
    if not value:
        return None
    if not value.isdigit():
        raise MalformedCallback(f"{name}={value[:40]!r} is not a non-negative integer")
    return int(value)


def _sids(form: Mapping[str, str]) -> tuple[str, str]:
    call_sid = _field(form, "CallSid", required=True)
    if not _CALL_SID.match(call_sid):
        raise MalformedCallback(f"CallSid={call_sid[:40]!r} is not a call sid (CA + 32 hex)")
    account_sid = _field(form, "AccountSid")
    if account_sid and not _ACCOUNT_SID.match(account_sid):
        raise MalformedCallback(f"AccountSid={account_sid[:40]!r} is not an account sid")
    return call_sid, account_sid


def parse_status_callback(form: Mapping[str, str], *, now: float | None = None) -> StatusCallback:
    """The event in a status callback's form.

    Raises:
        MalformedCallback: a missing or invalid ``CallSid`` / ``CallStatus``, or an invalid
            ``Timestamp``, ``SequenceNumber`` or ``CallDuration``.
    """
    call_sid, account_sid = _sids(form)
    status = _field(form, "CallStatus", required=True)
    if status not in CALL_STATUSES:
        raise MalformedCallback(f"CallStatus={status[:40]!r} is not a Twilio call status")
    stamp = _field(form, "Timestamp")
    at = time.time() if now is None else now
    if stamp:
        try:
            at = parsedate_to_datetime(stamp).timestamp()
        except (TypeError, ValueError, IndexError):
            raise MalformedCallback(f"Timestamp={stamp[:40]!r} is not an RFC 2822 date") from None
    return StatusCallback(
        call_sid=call_sid,
        status=status,
        at=at,
        sequence=_int(form, "SequenceNumber"),
        direction=_field(form, "Direction"),
        from_number=_field(form, "From"),
        to_number=_field(form, "To"),
        duration_s=_int(form, "CallDuration"),
        account_sid=account_sid,
    )


def parse_amd_callback(form: Mapping[str, str]) -> AmdCallback:
    """The result in an AMD callback's form.

    Raises:
        MalformedCallback: a missing or invalid ``CallSid`` or ``AnsweredBy``.
    """
    call_sid, account_sid = _sids(form)
    answered_by = _field(form, "AnsweredBy", required=True)
    if answered_by not in ANSWERED_BY:
        raise MalformedCallback(f"AnsweredBy={answered_by[:40]!r} is not an AMD result")
    return AmdCallback(
        call_sid=call_sid,
        answered_by=answered_by,
        detection_ms=_int(form, "MachineDetectionDuration"),
        account_sid=account_sid,
    )
