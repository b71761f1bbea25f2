"""``voiceagent calls``: the recent stored calls; ``voiceagent calls show SID``: one call.

The list can be filtered by Twilio's final status (``--status busy``) and by how the call
ended (``--ended-by voicemail``); ``show`` prints the call's status timeline (Twilio's
progress, answering machine verdicts), then every event of the call on the caller's stream
clock (:mod:`voiceagent.timeline`) and each turn's latency split by stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from voiceagent.storage.store import CallDetail, CallStore, CallSummary, StatusEntry
from voiceagent.telephony.end_reason import END_REASONS

TWILIO_STATUSES = (
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "no-answer",
    "failed",
    "canceled",
)
"""Twilio's ``CallStatus`` values, in the order a call goes through them."""


def add_calls_parser(sub: Any) -> None:
    """Add ``calls`` (and ``calls show SID``) to the ``voiceagent`` sub-commands."""
    calls = sub.add_parser("calls", help="list stored calls; 'calls show SID' for a transcript")
    calls.add_argument("--dir", type=Path, default=None, help="storage folder (default: settings)")
    calls.add_argument(
        "--url", default=None, help="postgresql:// URL of the call store (default: settings)"
    )
    calls.add_argument("--limit", type=int, default=20, help="how many calls to list")
    calls.add_argument(
        "--status", choices=TWILIO_STATUSES, default=None, help="only calls with this Twilio status"
    )
    calls.add_argument(
        "--ended-by", choices=END_REASONS, default=None, help="only calls that ended this way"
    )
    actions = calls.add_subparsers(dest="calls_action")
    show = actions.add_parser(
        "show",
        help="one call's timeline: speech, partials, commits, replies by stage, barge-ins, "
        "clears, provider switches, errors",
        description="Print one stored call: who, when, its audio file, then every event on the "
        "caller's stream clock and each turn's latency split by stage.",
    )
    show.add_argument(
        "sid",
        help="the call sid, a number from the list's # column, 'last' (the newest call) or "
        "'last~N' (the N-th before it)",
    )
    show.add_argument("--json", action="store_true", help="print the call as JSON")


def run_calls_command(args: argparse.Namespace, out: TextIO) -> int:
    """Print the list or one call; 0 on success, 1 for an unknown call, 2 for a bad database."""
    from voiceagent.settings import Settings
    from voiceagent.storage.archive import open_store
    from voiceagent.storage.store import StoreError

    overrides: dict[str, str] = {}
    if args.dir is not None:
        overrides["dir"] = str(args.dir)
    if args.url is not None:
        overrides["url"] = args.url
    settings = Settings.from_env(storage=overrides or None).storage
    where = _where(settings)
    try:
        store = open_store(settings, create=False)
    except FileNotFoundError:
        print(f"no calls stored yet (nothing in {where})", file=out)
        return 1 if args.calls_action == "show" else 0
    except (sqlite3.Error, OSError, StoreError) as e:
        print(f"error: cannot read the calls in {where}: {e}", file=sys.stderr)
        return 2
    try:
        if args.calls_action == "show":
            detail = resolve_call(store, args.sid)
            if detail is None:
                print(f"no stored call {args.sid!r} in {where}", file=out)
                return 1
            if getattr(args, "json", False):
                out.write(json.dumps(call_json(detail), indent=2, default=str) + "\n")
            else:
                print_call(detail, out)
        else:
            calls = store.recent_calls(
                max(1, args.limit),
                status=getattr(args, "status", None),
                ended_by=getattr(args, "ended_by", None),
            )
            print_calls(calls, out)
    finally:
        store.close()
    return 0


def _where(settings: Any) -> str:
    """The store's place for messages (a PostgreSQL URL without its password)."""
    if settings.url:
        from voiceagent.storage.postgres import redact

        return redact(settings.url)
    return str(settings.dir)


def _when(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix))


def _duration(call: CallSummary) -> str:
    seconds = call.duration_s
    return "live" if seconds is None else f"{seconds:.1f} s"


def print_calls(calls: list[CallSummary], out: TextIO) -> None:
    """The calls as a table, newest first."""
    if not calls:
        print("no calls stored yet", file=out)
        return
    sid_width = max(4, *(len(c.call_sid) for c in calls))
    print(
        f"{'#':>5}  {'SID':<{sid_width}}  {'DIR':<3} {'FROM':<16} {'TO':<16} {'STARTED':<19}  "
        f"{'DURATION':>9}  {'TURNS':>5}  {'STATUS':<11}  END",
        file=out,
    )
    for c in calls:
        turns = c.caller_turns + c.agent_turns
        way = "out" if c.direction.startswith("outbound") else "in"
        print(
            f"{c.id:>5}  {c.call_sid:<{sid_width}}  {way:<3} {c.from_number or '-':<16} "
            f"{c.to_number or '-':<16} {_when(c.started_at):<19}  {_duration(c):>9}  "
            f"{turns:>5}  {c.twilio_status or '-':<11}  {c.end_reason or '-'}",
            file=out,
        )


def resolve_call(store: CallStore, which: str) -> CallDetail | None:
    """The stored call ``which`` names (None: no such call).

    ``which`` is a call sid, a number from the list's ``#`` column, ``last`` (the newest call)
    or ``last~N`` (the N-th before the newest).
    """
    if which == "last" or which.startswith("last~"):
        back = which[5:]
        if back and not back.isdigit():
            return None
        n = int(back or 0)
        recent = store.recent_calls(n + 1)
        if len(recent) <= n:
            return None
        return store.find_call(str(recent[n].id))
    return store.find_call(which)


def print_call(detail: CallDetail, out: TextIO) -> None:
    """One call: who, when, how it ended, its audio file, then its timeline and latencies."""
    from voiceagent.timeline.model import CallTimeline
    from voiceagent.timeline.text import print_timeline

    call = detail.call
    stream = f"  stream {call.stream_sid}" if call.stream_sid else "  (no media stream)"
    print(f"call {call.call_sid} (#{call.id}){stream}", file=out)
    print(
        f"  {call.direction}, from {call.from_number or '-'} to {call.to_number or '-'}", file=out
    )
    ended = f", ended by {call.end_reason}" if call.end_reason else " (not completed)"
    print(f"  started {_when(call.started_at)}, {_duration(call)}{ended}", file=out)
    facts = []
    if call.twilio_status:
        facts.append(f"Twilio status {call.twilio_status}")
    if call.answered_at is not None and call.answered_at - call.started_at > 0.05:
        facts.append(f"stream started after {call.answered_at - call.started_at:.1f} s")
    if call.answered_by:
        facts.append(f"answered by {call.answered_by}")
    if facts:
        print(f"  {', '.join(facts)}", file=out)
    if call.audio_path:
        length = f"; {call.audio_seconds:.1f} s" if call.audio_seconds is not None else ""
        print(f"  audio {call.audio_path} (stereo: caller left, agent right{length})", file=out)
    else:
        print("  audio: none recorded", file=out)
    if call.write_errors:
        print(f"  recording errors: {call.write_errors} (see the server log)", file=out)
    print(
        f"  turns: caller {call.caller_turns}, agent {call.agent_turns} "
        f"({call.interrupted_turns} interrupted), tool calls {call.tool_calls}",
        file=out,
    )
    if detail.timeline:
        print_status(detail.timeline, call.started_at, out)
    timeline = CallTimeline.from_detail(detail)
    print("  times: seconds on the caller's stream clock", file=out)
    print("", file=out)
    print_timeline(timeline, out)


def call_json(detail: CallDetail) -> dict[str, Any]:
    """One call as JSON-ready data: its row, status timeline and timeline (latency per turn)."""
    from voiceagent.timeline.model import CallTimeline

    call = dataclasses.asdict(detail.call)
    call["duration_s"] = detail.call.duration_s
    return {
        "call": call,
        "status": [dataclasses.asdict(entry) for entry in detail.timeline],
        "timeline": CallTimeline.from_detail(detail).to_dict(),
    }


_SOURCES = {"rest": "placed", "status_callback": "", "amd": "Twilio AMD", "agent": "the agent"}


def print_status(timeline: list[StatusEntry], started_at: float, out: TextIO) -> None:
    """The call's progress: one line per step, with its time since the call started."""
    print("  status:", file=out)
    for entry in timeline:
        notes = [n for n in (_SOURCES.get(entry.source, entry.source),) if n]
        if "duration_s" in entry.data:
            notes.append(f"{entry.data['duration_s']} s")
        if "evidence" in entry.data:
            notes.append(str(entry.data["evidence"]))
        if "detection_ms" in entry.data:
            notes.append(f"after {entry.data['detection_ms']} ms")
        shown = f" ({', '.join(notes)})" if notes else ""
        clock = time.strftime("%H:%M:%S", time.localtime(entry.at))
        print(f"    {clock} {entry.at - started_at:+7.2f}s  {entry.status}{shown}", file=out)
