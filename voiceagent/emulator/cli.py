"""``voiceagent call``: phone a running voiceagent server as Twilio would, from WAV files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loguru import logger

from voiceagent.emulator.audio import load_wav_pcm8k, write_wav
from voiceagent.emulator.caller import CallerEmulator, CallReport
from voiceagent.emulator.script import CallerLine

DEFAULT_URL = "ws://127.0.0.1:8080/media"


class _ScriptItem(argparse.Action):
    """Collect --audio and --dtmf in command-line order into one ``script`` list."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: D102
        items = list(getattr(namespace, self.dest, None) or [])
        items.append((self.metavar.lower(), values))
        setattr(namespace, self.dest, items)


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def add_call_parser(subparsers: Any) -> None:
    """Register the ``call`` subcommand on an argparse subparsers object."""
    call = subparsers.add_parser(
        "call",
        help="call a voiceagent server as Twilio would, speaking WAV files",
        description="Emulate Twilio's side of a Media Streams call: each --audio is one caller "
        "line; after it the caller waits for the agent's reply. --dtmf presses keys after the "
        "preceding line (or as its own line).",
    )
    call.add_argument("--url", default=DEFAULT_URL, help=f"Media Streams URL ({DEFAULT_URL})")
    call.add_argument(
        "--audio",
        dest="script",
        action=_ScriptItem,
        metavar="WAV",
        help="a 16-bit WAV the caller says (repeatable, in order)",
    )
    call.add_argument(
        "--dtmf",
        dest="script",
        action=_ScriptItem,
        metavar="DIGITS",
        help="keypad digits pressed after the preceding --audio (repeatable)",
    )
    call.add_argument(
        "--pause",
        type=float,
        default=1.5,
        help="agent silence (s) that ends its reply before the caller goes on (1.5)",
    )
    call.add_argument("--out", default=None, help="write what the caller heard to this WAV")
    call.add_argument("--tail", type=float, default=4.0, help="seconds to stay on the line (4)")
    call.add_argument("--lead-in", type=float, default=0.5, help="silence before line 1 (0.5)")
    call.add_argument(
        "--max-wait", type=float, default=15.0, help="seconds to wait for a reply to start (15)"
    )
    call.add_argument(
        "--param",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a start.customParameters entry (repeatable)",
    )
    call.add_argument(
        "--header",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra HTTP header on the WebSocket upgrade (repeatable)",
    )
    call.add_argument(
        "--auth-token",
        default=None,
        help="sign the upgrade with this Twilio auth token (X-Twilio-Signature over --url)",
    )
    call.set_defaults(script=[])


def build_script(items: list[tuple[str, str]], pause_s: float) -> list[CallerLine]:
    """Turn ordered ``("wav", path)`` / ``("digits", keys)`` items into caller lines.

    Raises:
        ValueError: a WAV is unusable or the digits are not DTMF keys.
        OSError: a WAV cannot be read.
    """
    lines: list[CallerLine] = []
    for kind, value in items:
        if kind == "digits":
            if lines and not lines[-1].dtmf and lines[-1].pcm8k:
                previous = lines[-1]
                lines[-1] = CallerLine(
                    pcm8k=previous.pcm8k, pause_after_s=pause_s, text=previous.text, dtmf=value
                )
            else:
                lines.append(
                    CallerLine(pcm8k=b"", pause_after_s=pause_s, text=f"[{value}]", dtmf=value)
                )
        else:
            lines.append(
                CallerLine(
                    pcm8k=load_wav_pcm8k(value), pause_after_s=pause_s, text=Path(value).name
                )
            )
    return lines


def twilio_signature(url: str, auth_token: str) -> str:
    """X-Twilio-Signature of a WebSocket upgrade: HMAC-SHA1 over the URL with no parameters."""
    from twilio.request_validator import RequestValidator

    return RequestValidator(auth_token).compute_signature(url, {})


def _live(kind: str, data: dict) -> None:
    t = f"[{data.get('t', 0.0):6.2f}s]"
    if kind == "caller_line":
        said = data.get("text") or f"(line {data['index'] + 1})"
        print(f"{t} caller: {said}", flush=True)
    elif kind == "dtmf":
        print(f"{t} caller presses {data['digit']}", flush=True)
    elif kind == "no_reply":
        print(f"{t} (no agent reply to line {data['index'] + 1})", flush=True)
    elif kind == "agent_audio_start":
        print(f"{t} agent speaking", flush=True)
    elif kind == "agent_audio_end":
        print(f"{t} agent stopped ({data['duration_s']:.2f} s)", flush=True)
    elif kind == "clear":
        print(
            f"{t} clear: {data['discarded_s']:.2f} s of agent audio dropped, "
            f"{len(data['marks'])} mark(s) echoed at once",
            flush=True,
        )
    elif kind == "hangup":
        print(f"{t} call ended by the {data['by']}", flush=True)


def print_report(report: CallReport) -> None:
    """Print per-turn latency and the mark/clear counts."""
    print("\nturn  caller end  agent starts   latency  agent audio  caller said")
    for turn in report.turns:
        first = "-" if turn.first_agent_audio_s is None else f"{turn.first_agent_audio_s:9.2f}s"
        latency = "no reply" if turn.latency_ms is None else f"{turn.latency_ms:6.0f} ms"
        print(
            f"{turn.index + 1:>4}  {turn.caller_end_s:9.2f}s  {first:>12}  {latency:>8}  "
            f"{turn.agent_audio_s:10.2f}s  {turn.caller_text}"
        )
    print(
        f"marks {report.marks_received} received / {report.marks_echoed} echoed, "
        f"clears {report.clears}, agent media messages {report.media_received}, "
        f"playback glitches {report.agent_glitches} (pauses between segments "
        f"{report.agent_pauses}), malformed {report.malformed_messages}, "
        f"dtmf sent {report.dtmf_sent}"
    )
    ended = "server" if report.closed_by_server else "caller"
    print(f"call {report.duration_s:.1f} s, ended by the {ended}")


async def run_call_command(args: argparse.Namespace) -> int:
    """Run ``voiceagent call``; 0 when every line that waited for a reply got one, else 1.

    Unusable input (audio files, arguments) or an unreachable server return 2.
    """
    try:
        script = build_script(list(args.script or []), args.pause)
    except (OSError, ValueError) as e:
        logger.error(f"voiceagent call: {e}")
        print(f"error: {e}")
        return 2
    headers = dict(args.header or [])
    if args.auth_token:
        headers["X-Twilio-Signature"] = twilio_signature(args.url, args.auth_token)
    emulator = CallerEmulator(args.url, custom_parameters=dict(args.param or []), headers=headers)
    print(f"calling {args.url} (call {emulator.call_sid}, {len(script)} caller line(s))")
    try:
        report = await emulator.run(
            script,
            lead_in_s=args.lead_in,
            tail_s=args.tail,
            max_wait_reply_s=args.max_wait,
            on_event=_live,
        )
    except RuntimeError as e:
        print(f"error: {e}")
        return 2
    print_report(report)
    if args.out:
        try:
            write_wav(args.out, report.heard_pcm8k, 8000)
        except OSError as e:
            logger.error(f"voiceagent call: cannot write {args.out}: {e}")
            print(f"error: cannot write {args.out}: {e}")
            return 2
        print(f"caller-heard audio: {args.out} ({len(report.heard_pcm8k) / 16000:.1f} s)")
    if len(report.turns) < len(script):
        print(f"the call ended after {len(report.turns)} of {len(script)} caller line(s)")
        return 1
    waited = [t for t in report.turns if script[t.index].wait_for_reply]
    return 0 if all(t.latency_ms is not None for t in waited) else 1
