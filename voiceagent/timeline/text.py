"""A call's timeline as text, for ``voiceagent calls show`` and the eval's failed calls.

``calls show`` prints every event; the eval prints the compact view (what was said and heard,
commits, barge-ins, clears, errors) under a failed check; both end with the latency per turn
split by stage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TextIO

from voiceagent.storage.store import CallEvent
from voiceagent.timeline.latency import TurnLatency, turn_latencies
from voiceagent.timeline.model import CallTimeline

COMPACT_KINDS = frozenset(
    {
        "caller_line",
        "caller_heard",
        "caller_clear",
        "speech_start",
        "speech_end",
        "caller",
        "revision",
        "agent",
        "decision",
        "pause",
        "resume",
        "clear",
        "pause_clear",
        "dtmf",
        "tool",
        "provider",
        "error",
    }
)
_CUT = 70


def _q(text: str, width: int = _CUT) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _reason(data: dict[str, Any]) -> str:
    return f" ({data['reason']})" if data.get("reason") else ""


def _metrics_notes(data: dict[str, Any], metrics: dict[str, Any] | None) -> str:
    notes = [str(data["reason"])] if data.get("reason") else []
    if data.get("speculative_hit"):
        notes.append("speculative hit")
    if metrics:
        if isinstance(metrics.get("silence_s"), int | float):
            notes.append(f"after {metrics['silence_s'] * 1000:.0f} ms of silence")
        if metrics.get("regret"):
            after = metrics.get("regret_after_s")
            notes.append("regret" + (f" after {after:.2f} s" if after is not None else ""))
    return f" ({', '.join(notes)})" if notes else ""


def _agent(e: CallEvent, started: float | None) -> str:
    since = f"{started:.2f}s" if started is not None else "?"
    head = f"turn {e.turn_id} played {since}–{e.at_s:.2f}s"
    if e.data.get("in_context") is False:
        head += " (not in the conversation)"
    if e.interrupted:
        return f"{head}, CUT: heard {_q(e.text or '')} of {_q(e.full_text or '')}"
    return f"{head}: {_q(e.text or e.full_text or '')}"


def describe(e: CallEvent, metrics: dict[int | None, dict[str, Any]]) -> tuple[str, str] | None:
    """``(who, what)`` of one event for the text view; None for a kind it does not show."""
    d = e.data
    kind = e.kind
    simple: dict[str, Callable[[], tuple[str, str]]] = {
        "caller_line": lambda: ("caller", f"says {_q(e.text)} until {d.get('end_s', 0):.2f}s"),
        "caller_heard": lambda: ("caller", f"hears agent audio until {d.get('end_s', 0):.2f}s"),
        "caller_clear": lambda: (
            "caller",
            f"line cleared ({d.get('discarded_s', 0) * 1000:.0f} ms of agent audio dropped)",
        ),
        "sound": lambda: ("voice", "sound on" if d.get("sounding") else "sound off"),
        "speech_start": lambda: ("voice", "caller speech starts (VAD)"),
        "speech_end": lambda: ("voice", "caller speech ends (VAD)"),
        "partial": lambda: ("stt", f"partial {_q(e.text)}"),
        "final": lambda: ("stt", f"final {_q(e.text)}"),
        "dtmf": lambda: ("caller", f"keypad {e.text}"),
        "caller": lambda: (
            "turns",
            f"commit #{e.turn_id} {_q(e.text)}{_metrics_notes(d, metrics.get(e.turn_id))}",
        ),
        "revision": lambda: ("turns", f"revise #{e.turn_id} {_q(e.text)}"),
        "speculate": lambda: ("llm", f"speculate on {_q(e.text, 50)}"),
        "speculation_cancel": lambda: ("llm", "speculation withdrawn"),
        "llm_request": lambda: ("llm", f"request on {_q(e.text, 50)}"),
        "llm_first_token": lambda: ("llm", f"first token {_q(e.text, 30)}"),
        "chunk": lambda: ("tts", f"{'say' if d.get('fixed') else 'chunk'} {_q(e.text)}"),
        "tts_audio": lambda: ("tts", "first audio"),
        "agent_audio": lambda: (
            "output",
            f"turn {e.turn_id} first audio sent (plays {d.get('play_at_s', e.at_s):.2f}s)",
        ),
        "decision": lambda: ("turns", _decision(e)),
        "pause": lambda: ("output", f"agent audio paused{_reason(d)}"),
        "resume": lambda: ("output", f"agent audio resumed{_reason(d)}"),
        "clear": lambda: ("output", "clear sent"),
        "pause_clear": lambda: (
            "output",
            f"soft clear: the agent paused at the caller's sound ({d.get('held_s', 0):.2f} s held)",
        ),
        "mark_sent": lambda: ("output", f"mark {e.text} sent"),
        "mark_echo": lambda: ("line", f"mark {e.text} echoed"),
        "tool": lambda: ("tool", _tool(e)),
        "provider": lambda: (
            "stack",
            f"{e.text}: {d.get('failed')} failed → {d.get('serving') or 'no provider left'} "
            f"({d.get('reason')})",
        ),
        "error": lambda: ("stack", f"ERROR {e.text}"),
    }
    make = simple.get(kind)
    return make() if make is not None else None


def _decision(e: CallEvent) -> str:
    kind, reason = e.data.get("kind", ""), e.data.get("reason", "")
    if kind == "barge_in":
        return f"BARGE-IN ({reason})"
    if kind == "cancel_reply":
        return f"reply cancelled ({reason})"
    if kind == "say":
        return f"say ({reason}) {_q(e.text)}"
    return f"{kind} ({reason})"


def _tool(e: CallEvent) -> str:
    stage = e.data.get("stage", "")
    value = e.data.get("arguments") if stage == "call" else e.data.get("result")
    return f"{e.text} {stage}: {json.dumps(value, default=str)[:120]}"


def _rows(timeline: CallTimeline, kinds: frozenset[str] | None) -> list[tuple[float, str, str]]:
    metrics = {e.turn_id: e.data for e in timeline.of("metrics")}
    rows = []
    for e in timeline.events:
        if kinds is not None and e.kind not in kinds:
            continue
        if e.kind == "agent":
            started = e.data.get("started_s")
            start = float(started) if isinstance(started, int | float) else None
            rows.append((start if start is not None else e.at_s, "agent", _agent(e, start)))
            continue
        shown = describe(e, metrics)
        if shown is not None:
            rows.append((e.at_s, *shown))
    rows.sort(key=lambda row: row[0])
    return rows


def latency_line(latency: TurnLatency) -> str:
    """``#2 'words' 910 ms = commit wait 260 + … ms`` for one turn."""
    total = latency.total_ms
    shown = f"{total:.0f} ms" if total is not None else "no reply"
    by = "" if latency.end_of_speech_by == "caller" else " (from the VAD's end of speech)"
    head = f"#{latency.turn_id} {_q(latency.text, 40)} {shown}{by}"
    if total is None:
        return head
    network = "" if latency.marks.get("heard") is not None else " (+ network: unknown)"
    return f"{head} = {latency.split_text()}{network}"


def print_timeline(
    timeline: CallTimeline, out: TextIO, *, compact: bool = False, indent: str = "  "
) -> None:
    """The events one per line (``compact``: the ones that explain a failed check)."""
    for at, who, what in _rows(timeline, COMPACT_KINDS if compact else None):
        out.write(f"{indent}{at:7.2f}s  {who:<6}  {what}\n")
    latencies = turn_latencies(timeline)
    if latencies:
        out.write(f"{indent}latency per turn (end of speech → agent heard):\n")
        for latency in latencies:
            out.write(f"{indent}  {latency_line(latency)}\n")
