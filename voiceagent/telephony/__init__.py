"""Telephony beyond answering: outbound calls, transfers, answering machines, how calls end.

- :func:`place_call` — Twilio calls a number; the answered call streams to the server.
- :func:`transfer_call` — move a live call to a number or SIP URI (``<Dial>``).
- :class:`EndReason` — why a call ended, as every call record says it.

The server side lives in :mod:`voiceagent.server.callbacks` (status and AMD callbacks) and the
pipeline stages in :mod:`voiceagent.processors.voicemail` (answering machines) and
:mod:`voiceagent.processors.hang_up` (hang-up and hand-over after the last words). Names are
imported on first use, so the storage layer can use :mod:`voiceagent.telephony.end_reason`
without pulling in the server.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voiceagent.telephony.dial import PlacedCall, place_call
    from voiceagent.telephony.end_reason import EndReason
    from voiceagent.telephony.numbers import InvalidNumberError
    from voiceagent.telephony.transfer import transfer_call

__all__ = ["EndReason", "InvalidNumberError", "PlacedCall", "place_call", "transfer_call"]

_HOMES = {
    "EndReason": "voiceagent.telephony.end_reason",
    "InvalidNumberError": "voiceagent.telephony.numbers",
    "PlacedCall": "voiceagent.telephony.dial",
    "place_call": "voiceagent.telephony.dial",
    "transfer_call": "voiceagent.telephony.transfer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'voiceagent.telephony' has no attribute {name!r}")
    return getattr(import_module(home), name)
