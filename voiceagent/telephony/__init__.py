"""Telephony beyond answering: outbound calls, transfers, answering machines, how calls end.

- :func:`place_call` — Twilio calls a number; the answered call streams to the server.
- :func:`transfer_call` — move a live call to a number or SIP URI (``<Dial>``).
- :class:`EndReason` — why a call ended, as every call record says it.

The server side lives in :mod:`voiceagent.server.callbacks` (status and AMD callbacks) and the
pipeline stages in :mod:`voiceagent.processors.voicemail` (answering machines) and
:mod:`voiceagent.processors.hang_up` (hang-up and hand-over after the last words).
"""

from voiceagent.telephony.dial import PlacedCall, place_call
from voiceagent.telephony.end_reason import EndReason
from voiceagent.telephony.numbers import InvalidNumberError
from voiceagent.telephony.transfer import transfer_call

__all__ = ["EndReason", "InvalidNumberError", "PlacedCall", "place_call", "transfer_call"]
