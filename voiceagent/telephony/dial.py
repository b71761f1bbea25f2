"""Outbound calls: Twilio dials the number; when it answers, the call streams to our server.

``place_call`` asks Twilio (``calls.create_async``) to call ``to`` from ``from_`` with TwiML
that connects the answered call to ``wss://PUBLIC_HOST/media`` — the same Media Streams
endpoint inbound calls use — and with a ``StatusCallback`` at ``https://PUBLIC_HOST/twilio/status``
for the ``initiated``, ``ringing``, ``answered`` and ``completed`` events. With
``telephony.machine_detection="twilio"`` it also turns on Twilio's answering machine detection
(``AsyncAmd``: the call connects at once and the result is posted to ``/twilio/amd``):
``DetectMessageEnd`` to leave a message after the greeting, ``Enable`` to hang up as soon as
a machine is known.

The stream's ``<Parameter>``s tell the server the call is outbound and how to treat a machine,
so a call describes itself whichever process placed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from loguru import logger

from voiceagent.server.signature import normalize_host
from voiceagent.server.twiml import MEDIA_PATH, connect_stream_twiml, media_stream_url
from voiceagent.settings import Settings
from voiceagent.telephony.callbacks import AMD_PATH, STATUS_PATH
from voiceagent.telephony.numbers import check_transfer_target, normalize_e164
from voiceagent.transports.twilio.rest import STATUS_CALLBACK_EVENTS, TwilioRestClient

OUTBOUND = "outbound-api"
"""Twilio's ``Direction`` of a call placed through the REST API."""

MachineDetection = Literal["agent", "twilio", "off"]
VoicemailAction = Literal["leave_message", "hang_up"]


@dataclass(frozen=True)
class PlacedCall:
    """A call Twilio accepted to place (it rings next; its progress arrives as callbacks)."""

    sid: str
    status: str
    to: str
    from_: str
    machine_detection: str
    voicemail_action: str
    created_at: float | None = None
    """When Twilio created it (its ``date_created``)."""


def callback_url(host: str, path: str) -> str:
    """``https://host/path``: where Twilio posts a call's progress (Twilio requires TLS)."""
    return f"https://{normalize_host(host)}{path}"


def outbound_twiml(
    host: str,
    *,
    to: str,
    from_: str,
    machine_detection: MachineDetection,
    voicemail_action: VoicemailAction,
) -> str:
    """``<Connect><Stream>`` to our media endpoint, the call described in ``<Parameter>``s."""
    parameters = {
        "Direction": OUTBOUND,
        "From": from_,
        "To": to,
        "AnsweringMachine": machine_detection,
        "VoicemailAction": voicemail_action,
    }
    return connect_stream_twiml(media_stream_url(normalize_host(host), MEDIA_PATH), parameters)


def call_parameters(
    settings: Settings,
    to: str,
    from_: str | None = None,
    *,
    machine_detection: MachineDetection | None = None,
    voicemail_action: VoicemailAction | None = None,
) -> dict[str, object]:
    """The ``calls.create_async`` keyword arguments of a call to ``to``.

    Raises:
        ValueError: no public host, no caller id, or a number that is not E.164 / SIP.
    """
    telephony = settings.telephony
    host = settings.server.public_host
    if not host:
        raise ValueError(
            "outbound calls need the server's public host (PUBLIC_HOST): Twilio connects the "
            "answered call to wss://PUBLIC_HOST/media and posts its progress to "
            f"https://PUBLIC_HOST{STATUS_PATH}"
        )
    caller_id = from_ or telephony.from_number
    if not caller_id:
        raise ValueError("no caller id: pass --from or set TWILIO_FROM_NUMBER (a Twilio number)")
    to = check_transfer_target(to)
    caller_id = normalize_e164(caller_id)
    detection = machine_detection or telephony.machine_detection
    action = voicemail_action or telephony.voicemail_action
    params: dict[str, object] = {
        "to": to,
        "from_": caller_id,
        "twiml": outbound_twiml(
            host, to=to, from_=caller_id, machine_detection=detection, voicemail_action=action
        ),
        "status_callback": callback_url(host, STATUS_PATH),
        "status_callback_event": list(STATUS_CALLBACK_EVENTS),
        "status_callback_method": "POST",
        "timeout": telephony.ring_timeout_s,
    }
    if detection == "twilio":
        params.update(
            machine_detection="DetectMessageEnd" if action == "leave_message" else "Enable",
            machine_detection_timeout=telephony.amd_timeout_s,
            async_amd="true",
            async_amd_status_callback=callback_url(host, AMD_PATH),
            async_amd_status_callback_method="POST",
        )
    return params


async def place_call(
    settings: Settings,
    to: str,
    from_: str | None = None,
    *,
    machine_detection: MachineDetection | None = None,
    voicemail_action: VoicemailAction | None = None,
    rest: TwilioRestClient | None = None,
) -> PlacedCall:
    """Have Twilio call ``to``; the answered call streams to this deployment's server.

    Args:
        settings: Credentials (``twilio``), public host (``server``), caller id, ring
            timeout and machine handling (``telephony``).
        to: The number (E.164) or SIP URI to call.
        from_: The caller id (a Twilio number); default ``telephony.from_number``.
        machine_detection: Override ``telephony.machine_detection`` for this call.
        voicemail_action: Override ``telephony.voicemail_action`` for this call.
        rest: The REST client (default: from ``settings``).

    Raises:
        ValueError: missing credentials, public host or caller id; a malformed number.
        TwilioRestError: Twilio refused the call (``auth``, ``invalid_number``,
            ``rate_limited``, …) or could not be reached; no call was placed.
    """
    params = call_parameters(
        settings,
        to,
        from_,
        machine_detection=machine_detection,
        voicemail_action=voicemail_action,
    )
    client = rest or TwilioRestClient.from_settings(settings)
    if client is None:
        raise ValueError("outbound calls need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    call = await client.create_call(**params)
    detection = str(machine_detection or settings.telephony.machine_detection)
    action = str(voicemail_action or settings.telephony.voicemail_action)
    logger.info(
        f"call {call.sid}: placed to {params['to']} from {params['from_']} ({call.status}); "
        f"answering machines: {detection}, {action}"
    )
    return PlacedCall(
        sid=call.sid,
        status=call.status,
        to=str(params["to"]),
        from_=str(params["from_"]),
        machine_detection=detection,
        voicemail_action=action,
        created_at=call.created_at,
    )
