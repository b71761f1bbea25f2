"""``voiceagent dial``: have Twilio call a number; the answered call streams to the server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

from loguru import logger

from voiceagent.telephony.callbacks import STATUS_PATH

POLL_S = 1.0
TERMINAL = ("completed", "busy", "no-answer", "failed", "canceled")


def add_dial_parser(sub: Any) -> None:
    """Add ``dial`` to the ``voiceagent`` sub-commands."""
    dial = sub.add_parser(
        "dial",
        help="place an outbound call through Twilio (the server must be running at PUBLIC_HOST)",
        description="Twilio calls --to from --from; when it answers, the call is connected to "
        "wss://PUBLIC_HOST/media (a running 'voiceagent serve') and the agent speaks first. "
        f"Progress is posted to https://PUBLIC_HOST{STATUS_PATH}. Needs TWILIO_ACCOUNT_SID, "
        "TWILIO_AUTH_TOKEN and PUBLIC_HOST.",
    )
    dial.add_argument("--to", required=True, help="the number to call (E.164) or a SIP URI")
    dial.add_argument(
        "--from", dest="from_", default=None, help="caller id (default TWILIO_FROM_NUMBER)"
    )
    dial.add_argument(
        "--machine-detection",
        choices=("agent", "twilio", "off"),
        default=None,
        help="who tells answering machines from people (default: settings, 'agent')",
    )
    dial.add_argument(
        "--voicemail",
        choices=("leave-message", "hang-up"),
        default=None,
        help="what to do on an answering machine (default: settings, 'leave-message')",
    )
    dial.add_argument("--public-host", default=None, help="the server's public host")
    dial.add_argument(
        "--wait", action="store_true", help="follow the call's status until it is over"
    )
    dial.add_argument(
        "--wait-timeout", type=float, default=600.0, help="give up following after this (s)"
    )


async def run_dial_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Place the call; 0 once Twilio accepted it (with ``--wait``: once it completed).

    Unusable input or a refused request print a clear error and return 2; with ``--wait`` a
    call that ended busy, unanswered, failed or canceled returns 1.
    """
    from voiceagent.settings import Settings
    from voiceagent.telephony.dial import place_call
    from voiceagent.transports.twilio.rest import TwilioRestClient, TwilioRestError

    server = {"public_host": args.public_host} if args.public_host else None
    try:
        settings = Settings.from_env(server=server)
        rest = TwilioRestClient.from_settings(settings)
        voicemail = args.voicemail.replace("-", "_") if args.voicemail else None
        placed = await place_call(
            settings,
            args.to,
            args.from_,
            machine_detection=args.machine_detection,
            voicemail_action=voicemail,
            rest=rest,
        )
    except TwilioRestError as e:
        logger.error(f"voiceagent dial: {e}")
        print(f"error: no call was placed: {e}", file=out)
        return 2
    except ValueError as e:
        logger.error(f"voiceagent dial: {e}")
        print(f"error: {e}", file=out)
        return 2
    await _record(settings, placed, out)
    print(
        f"call {placed.sid}: {placed.status}, to {placed.to} from {placed.from_} "
        f"(answering machines: {placed.machine_detection}, {placed.voicemail_action})",
        file=out,
        flush=True,
    )
    print(f"follow it: voiceagent calls show {placed.sid}", file=out, flush=True)
    if not args.wait:
        return 0
    assert rest is not None
    return await _follow(rest, placed.sid, args.wait_timeout, out)


async def _record(settings: Any, placed: Any, out: TextIO) -> None:
    """Start the call's record with the REST answer (the server adds its progress)."""
    if not settings.storage.enabled:
        return
    from voiceagent.storage.archive import open_store
    from voiceagent.telephony.records import placed_update

    def write() -> None:
        store = open_store(settings.storage)
        try:
            store.record_status(placed_update(placed))
        finally:
            store.close()

    try:
        await asyncio.to_thread(write)
    except Exception as e:
        logger.warning(f"call {placed.sid}: placed, but recording it failed: {e!r}")
        print(f"warning: call {placed.sid} was placed but not recorded here: {e}", file=out)


async def _follow(rest: Any, sid: str, timeout_s: float, out: TextIO) -> int:
    """Print the call's status as it changes (``GET Calls/{sid}.json``) until it is over."""
    from voiceagent.transports.twilio.rest import TwilioRestError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = ""
    while loop.time() < deadline:
        try:
            call = await rest.fetch_call(sid)
        except TwilioRestError as e:
            print(f"error: cannot follow call {sid}: {e}", file=out)
            return 2
        if call.status != last:
            last = call.status
            seconds = (
                f" after {call.duration_s} s"
                if call.status == "completed" and call.duration_s is not None
                else ""
            )
            print(f"call {sid}: {call.status}{seconds}", file=out, flush=True)
        if call.status in TERMINAL:
            return 0 if call.status == "completed" else 1
        await asyncio.sleep(POLL_S)
    print(f"call {sid}: still {last} after {timeout_s:.0f} s; stopped following", file=out)
    return 1
