"""Run the fake Twilio as a process, for trying ``voiceagent dial`` without Twilio (tests only).

    python -m tests.telephony.fake_twilio_cli --port 8099 --answer person \\
        --say "Hello who is calling please" --say "No thanks goodbye"

It serves Twilio's voice REST API on 127.0.0.1 for one account (``--account-sid``,
``--auth-token``: point ``VOICEAGENT_TWILIO__API_BASE_URL`` at it) and answers every call the
way ``--answer`` says: a person speaking the ``--say`` lines (espeak-ng) after the agent's
greeting, an answering machine (``--greeting`` then a 1 kHz beep), busy, no-answer or failed.
Callbacks and the media stream go where the call's TwiML and ``StatusCallback`` say, signed
with the auth token. It prints what happens until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path

from tests.telephony.fake_twilio import Callee, FakeTwilio
from tests.telephony.outbound_harness import GREETING, machine, person

ACCOUNT = "AC" + "0" * 31 + "1"


def _callee(args: argparse.Namespace, folder: Path) -> Callee:
    if args.answer == "person":
        return person(
            folder, *args.say, ring_s=args.ring_s, tail_s=args.tail_s, lead_in_s=args.lead_in_s
        )
    if args.answer == "machine":
        return machine(folder, greeting=args.greeting, ring_s=args.ring_s)
    return Callee(answer=args.answer, ring_s=args.ring_s)


def _print(sid: str, kind: str, data: dict) -> None:
    t = f"[{data.get('t', 0.0):6.2f}s]" if "t" in data else " " * 9
    if kind == "callback":
        form = data["form"]
        what = form.get("CallStatus") or f"AnsweredBy={form.get('AnsweredBy')}"
        print(f"{sid} {t} → {data['url']} {what}: HTTP {data['status']}", flush=True)
    elif kind == "caller_line":
        print(f"{sid} {t} callee: {data.get('text')}", flush=True)
    elif kind == "agent_audio_start":
        print(f"{sid} {t} agent speaking", flush=True)
    elif kind == "agent_audio_end":
        print(f"{sid} {t} agent stopped ({data['duration_s']:.2f} s)", flush=True)
    elif kind == "hangup":
        print(f"{sid} {t} stream ended by the {data['by']}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--account-sid", default=ACCOUNT)
    parser.add_argument("--auth-token", default="fake-twilio-token")
    parser.add_argument("--number", action="append", default=[], help="the account's numbers")
    parser.add_argument(
        "--answer", choices=("person", "machine", "busy", "no-answer", "failed"), default="person"
    )
    parser.add_argument("--say", action="append", default=[], help="a line the person says")
    parser.add_argument("--greeting", default=GREETING, help="the machine's greeting")
    parser.add_argument("--ring-s", type=float, default=1.0)
    parser.add_argument("--tail-s", type=float, default=2.0)
    parser.add_argument(
        "--lead-in-s",
        type=float,
        default=1.5,
        help="a person waits this long for the agent to greet before saying the first line",
    )
    args = parser.parse_args()
    numbers = tuple(args.number or ["+15550100100"])
    with tempfile.TemporaryDirectory(prefix="fake-twilio-") as tmp:
        callee = _callee(args, Path(tmp))
        twilio = FakeTwilio(
            args.account_sid,
            args.auth_token,
            numbers=numbers,
            default_callee=callee,
            on_event=_print,
        )
        twilio.port = args.port
        async with twilio:
            print(
                f"fake Twilio on {twilio.base_url} (account {args.account_sid}, numbers "
                f"{', '.join(numbers)}; every call: {args.answer})",
                flush=True,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
