"""Where a call may go: E.164 phone numbers and SIP URIs, checked before Twilio sees them.

Twilio itself rejects a bad ``To`` with error 21211 only after a round trip (and a ``<Dial>``
to a bad number fails after the caller has already left the agent), so numbers are checked
here first, with a message that says what is wrong.
"""

from __future__ import annotations

import re

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SIP = re.compile(r"^sips?:[A-Za-z0-9._~%!$&'()*+,;=:-]+@[A-Za-z0-9.-]+(:\d{1,5})?(;[^\s<>\"]*)?$")
_SEPARATORS = re.compile(r"[\s().-]")


class InvalidNumberError(ValueError):
    """Not a phone number Twilio can dial (E.164) or not a SIP URI."""


def normalize_e164(text: str) -> str:
    """``"+1 (555) 010-0199"`` → ``"+15550100199"``.

    Raises:
        InvalidNumberError: not an E.164 number (a ``+``, country code, 7 to 15 digits).
    """
    number = _SEPARATORS.sub("", text.strip())
    if not _E164.match(number):
        raise InvalidNumberError(
            f"{text!r} is not a phone number in E.164 form (a '+', the country code and the "
            "number, e.g. +15550100199)"
        )
    return number


def is_sip_uri(text: str) -> bool:
    """Whether ``text`` is a ``sip:``/``sips:`` URI with a user and a host."""
    return bool(_SIP.match(text.strip()))


def check_transfer_target(text: str) -> str:
    """A transfer destination, normalized: an E.164 number or a SIP URI.

    Raises:
        InvalidNumberError: neither.
    """
    target = text.strip()
    if target.lower().startswith(("sip:", "sips:")):
        if not is_sip_uri(target):
            raise InvalidNumberError(
                f"{text!r} is not a SIP URI (expected sip:user@host, e.g. sip:desk@pbx.example.com)"
            )
        return target
    try:
        return normalize_e164(target)
    except InvalidNumberError:
        raise InvalidNumberError(
            f"{text!r} is neither an E.164 phone number (+15550100199) nor a SIP URI "
            "(sip:user@host)"
        ) from None
