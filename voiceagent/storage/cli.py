"""``voiceagent calls``: the recent stored calls; ``voiceagent calls show SID``: one call.

The list can be filtered by Twilio's final status (``--status busy``) and by how the call
ended (``--ended-by voicemail``); ``show`` prints the call's status timeline (Twilio's
progress, answering machine verdicts) before its transcript.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from voiceagent.storage.store import CallDetail, CallEvent, CallSummary, StatusEntry
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
    show = actions.add_parser("show", help="one call's transcript, timings and audio file")
    show.add_argument("sid", help="the call sid (or the number in the list's # column)")


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
            detail = store.find_call(args.sid)
            if detail is None:
                print(f"no stored call {args.sid!r} in {where}", file=out)
                return 1
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


_LABELS = {"provider": "switch", "pause_clear": "pause"}


def _shown_at(event: CallEvent) -> float:
    started = event.data.get("started_s") if event.kind == "agent" else None
    return started if isinstance(started, int | float) else event.at_s


def _commit_notes(data: dict[str, Any], metrics: dict[str, Any] | None) -> str:
    notes = [str(data["reason"])] if data.get("reason") else []
    if data.get("speculative_hit"):
        notes.append("speculative hit")
    if metrics:
        if isinstance(metrics.get("silence_s"), int | float):
            notes.append(f"after {metrics['silence_s'] * 1000:.0f} ms of silence")
        if metrics.get("regret"):
            after = metrics.get("regret_after_s")
            notes.append("regret" + (f" after {after:.2f} s" if after is not None else ""))
    return ", ".join(notes)


def print_call(detail: CallDetail, out: TextIO) -> None:
    """One call: who, when, how it ended, its audio file, then the transcript with timings."""
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
        print_timeline(detail.timeline, call.started_at, out)
    print("", file=out)
    metrics = {e.turn_id: e.data for e in detail.events if e.kind == "metrics"}
    shown = sorted((e for e in detail.events if e.kind != "metrics"), key=_shown_at)
    for event in shown:
        at = f"{_shown_at(event):7.2f}s"
        turn = "" if event.turn_id is None else str(event.turn_id)
        label = _LABELS.get(event.kind, event.kind)
        head = f"{at}  {label:<6} {turn:>3}  "
        pad = " " * len(head)
        if event.kind == "caller":
            print(f"{head}{event.text}", file=out)
            notes = _commit_notes(event.data, metrics.get(event.turn_id))
            if notes:
                print(f"{pad}(committed at {event.at_s:.2f}s: {notes})", file=out)
        elif event.kind == "revision":
            print(f"{head}revised: {event.text}", file=out)
        elif event.kind == "agent":
            until = f"until {event.at_s:.2f}s"
            if event.interrupted:
                print(f"{head}heard: {event.text or '(nothing)'}", file=out)
                print(f"{pad}full:  {event.full_text or ''}", file=out)
                print(f"{pad}(interrupted, {until})", file=out)
            else:
                print(f"{head}{event.text or event.full_text or ''}  ({until})", file=out)
        elif event.kind == "pause_clear":
            held = event.data.get("held_s", 0.0)
            print(f"{head}agent paused at the caller's sound ({held:.2f} s held)", file=out)
        elif event.kind == "clear":
            print(f"{head}barge-in: the agent's unplayed audio dropped", file=out)
        elif event.kind == "provider":
            data = event.data
            serving = data.get("serving") or "no provider left"
            print(f"{head}{event.text}: {data.get('failed')} failed → {serving}", file=out)
            print(f"{pad}({data.get('reason', '')})", file=out)
        else:
            stage = event.data.get("stage", "")
            value = event.data.get("arguments") if stage == "call" else event.data.get("result")
            print(f"{head}{event.text} {stage}: {json.dumps(value, default=str)}", file=out)


_SOURCES = {"rest": "placed", "status_callback": "", "amd": "Twilio AMD", "agent": "the agent"}


def print_timeline(timeline: list[StatusEntry], started_at: float, out: TextIO) -> None:
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
