"""What one bench call observed, measured from the caller's side, and the printed report.

Figures come from the Twilio caller emulator's events (lines spoken, agent audio heard, marks,
``clear``, keypad digits) so they do not depend on how the agent decides; commit and regret
counts come from frames a ``Probe`` sees (``UserTurnCommittedFrame``, ``TurnMetricsFrame``),
and the provider floor from the fakes' own records and the STT's final transcripts.

Server times (``time.monotonic``) are put on the emulator's stream clock with the offset
measured from its events that carry "now" (``agent_audio_start``, ``clear``). The provider
floor of a reply is the STT's final latency (end of speech → the final that closes the audio
up to it), the LLM's first token after its request and the TTS's first audio after its
request, each measured in the same run.

An agent *reply* is told apart from the caller's side by its marks: TwilioOutput names the
mark after each segment ``a<reply>.<segment>`` (``a<reply>.<segment>r<n>`` when sent again
after a soft clear); a reply starts where the audio before its first mark began (the previous
mark, or the start of an utterance). An utterance without marks counts as one reply.

The caller sees two kinds of ``clear`` alike: the *soft* clear at the caller's first sound over
the agent (``pause_clear`` in the call record: the agent stops at once and goes on where it
stopped if the sound was a backchannel or a noise) and the *barge-in* clear (``clear``: the
reply is cut off). The server sends them in order and the caller receives them in order, so
the n-th clear the caller saw is the n-th in the server's call record
(``CallRecord.server_clears``). Audio after a soft clear continues the same reply.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.fakes.caller_lines import BenchLine
from bench.fakes.probe import ProbeEvent

_INF = math.inf
MID_UTTERANCE_GRACE_S = 0.3  # an agent reply starting this soon after the caller began is a race
BARGE_WINDOW_S = 5.0
TALK_KINDS = ("turn", "barge", "dtmf")  # lines the agent should answer once


@dataclass
class CallRecord:
    """Everything one call produced (filled by the bench)."""

    name: str
    lines: list[BenchLine]
    probes: list[ProbeEvent] = field(default_factory=list)
    events: list[tuple[float, str, dict]] = field(default_factory=list)  # (monotonic, kind, data)
    report: Any = None  # CallReport
    parts: Any = None  # CallParts
    tts: Any = None  # FakeCloudTTS
    stt_connections: list[Any] = field(default_factory=list)  # live STT ConnectionRecords
    transport: Any = None
    llm_requests: list[Any] = field(default_factory=list)  # openai_sse.LLMRequest
    server_clears: list[str] | None = None  # "pause_clear" | "clear", in order (call record)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Timeline:
    """One call's events on the emulator's stream clock (seconds since the stream started)."""

    def __init__(self, rec: CallRecord) -> None:
        self.rec = rec
        now_events = [m - d["t"] for m, k, d in rec.events if k in ("agent_audio_start", "clear")]
        if not now_events:
            now_events = [m - d["t"] for m, k, d in rec.events if "t" in d] or [0.0]
        self.t0 = min(now_events)
        self.starts: dict[int, float] = {}
        self.ends: dict[int, float] = {}
        self.keys: dict[int, list[float]] = {}
        self.clears: list[float] = []  # every clear the caller got
        self.audio_ends: list[float] = []  # the agent's audio ran out at the caller
        for _, kind, data in rec.events:
            if kind == "caller_line":
                self.starts[data["index"]] = data["t"]
            elif kind == "caller_line_end":
                self.ends[data["index"]] = data["t"]
            elif kind == "clear":
                self.clears.append(data["t"])
            elif kind == "agent_audio_end":
                self.audio_ends.append(data["t"])
            elif kind == "dtmf":
                self.keys.setdefault(data["index"], []).append(data["t"])
        self.clear_kinds = clear_kinds(rec, len(self.clears))
        kinds = list(zip(self.clears, self.clear_kinds, strict=True))
        self.barge_clears = [t for t, k in kinds if k != PAUSE]
        self.pause_clears = [t for t, k in kinds if k == PAUSE]
        self.probes = [(p.t - self.t0, p.stage, p.event, p.detail) for p in rec.probes]
        self.replies = reply_starts(rec.events, self.clear_kinds)

    def stream_t(self, monotonic: float | None) -> float | None:
        """A server time on the stream clock."""
        return None if monotonic is None else monotonic - self.t0

    def window(self, i: int) -> tuple[float, float]:
        """From the end of line ``i`` to the start of the next (or the end of the call)."""
        end = self.ends.get(i, self.starts.get(i, 0.0))
        following = [self.starts[j] for j in self.starts if j > i]
        return end, min(following) if following else _INF

    def events(self, event: str, after: float = -_INF, before: float = _INF) -> list[tuple]:
        return [p for p in self.probes if p[2] == event and after <= p[0] < before]


PAUSE = "pause_clear"
"""The call record's event for a soft clear (the agent paused at the caller's first sound)."""


def clear_kinds(rec: CallRecord, count: int) -> list[str]:
    """The kind of each of the ``count`` clears the caller got, from the server's call record.

    ``"clear"`` for all when the record is missing or does not match (a server without soft
    clears records none; a mismatch is reported by ``print_report``).
    """
    kinds = rec.server_clears
    if kinds is None or len(kinds) != count:
        return ["clear"] * count
    return list(kinds)


def reply_starts(
    events: list[tuple[float, str, dict]], kinds: list[str] | None = None
) -> list[float]:
    """When each distinct agent reply began to play, from the caller's events (see above).

    After a ``clear`` every outstanding mark is echoed at once: only the first of them closed
    the segment that was playing; the others' audio was never heard. ``kinds``: each clear's
    kind (``clear_kinds``); after a soft clear the next audio goes on with the same reply.
    """
    keyed: dict[str, float] = {}
    unnamed: list[float] = []
    boundary: float | None = None  # where the audio now playing began
    marked = True  # the current utterance has a heard mark
    first_after_clear = False
    resuming = False  # a soft clear stopped the reply: its next audio is the same reply
    clears = 0
    for _, kind, data in events:
        if kind == "agent_audio_start":
            if resuming:
                resuming = False
                continue
            if not marked and boundary is not None:
                unnamed.append(boundary)
            boundary, marked = data["t"], False
        elif kind == "clear":
            first_after_clear = True
            resuming = kinds is not None and clears < len(kinds) and kinds[clears] == PAUSE
            clears += 1
        elif kind == "mark":
            heard = True
            if data.get("cleared"):
                heard = first_after_clear and boundary is not None and data["t"] > boundary
                first_after_clear = False
            else:
                resuming = False  # the reply went on (a pause shorter than an utterance gap)
            if not heard:
                continue
            name = data["name"]
            key = name.rsplit(".", 1)[0] if "." in name else name
            keyed.setdefault(key, boundary if boundary is not None else data["t"])
            marked, boundary = True, data["t"]
    if not marked and boundary is not None:
        unnamed.append(boundary)
    return sorted([*keyed.values(), *unnamed])


@dataclass
class LineRow:
    """One caller line and what followed it (seconds on the stream clock, ms for latencies)."""

    call: str
    index: int
    line: BenchLine
    start: float
    end: float
    replies: list[float]  # agent replies started after the line, before the next one
    over_caller: list[float]  # agent replies started while the caller was mid-utterance
    latency_ms: float | None = None  # end of speech (or last key) → first agent audio
    stt_final_ms: float | None = None
    llm_ttft_ms: float | None = None
    tts_first_ms: float | None = None
    clear_ms: float | None = None  # barge-in onset → the first clear (soft or barge-in)
    barge_clear_ms: float | None = None  # barge-in onset → the barge-in clear (reply cut off)
    silent_ms: float | None = None  # barge-in onset → the agent's audio stopped at the caller
    interruptions: int = 0  # barge-in clears during a backchannel: a reply cut off
    pause_clears: int = 0  # soft clears during a backchannel: the agent stopped and went on

    @property
    def floor_ms(self) -> float | None:
        parts = (self.stt_final_ms, self.llm_ttft_ms, self.tts_first_ms)
        return None if any(p is None for p in parts) else sum(parts)  # type: ignore[misc]

    @property
    def answered_twice(self) -> bool:
        return (
            self.line.kind in TALK_KINDS and not self.line.mid_utterance and len(self.replies) >= 2
        )


def _ms(t: float | None, ref: float) -> float | None:
    return None if t is None else (t - ref) * 1000.0


def line_rows(rec: CallRecord) -> list[LineRow]:
    """Every caller line of one call, with its replies, latency and provider floor."""
    tl = Timeline(rec)
    rows = []
    for i, line in enumerate(rec.lines):
        if i not in tl.starts:
            continue
        start = tl.starts[i]
        end, until = tl.window(i)
        if line.kind == "dtmf" and tl.keys.get(i):
            end = tl.keys[i][-1]
        replies = [t for t in tl.replies if end <= t < until]
        stop = until if line.mid_utterance else end
        over = [t for t in tl.replies if start + MID_UTTERANCE_GRACE_S < t < stop]
        row = LineRow(rec.name, i, line, start, end, replies, over)
        first = replies[0] if replies else None
        row.latency_ms = _ms(first, end)
        if line.kind in TALK_KINDS and first is not None:
            _floor(row, tl, rec, first)
        if line.kind == "barge":
            row.clear_ms = _ms(_first(tl.clears, start, start + BARGE_WINDOW_S), start)
            row.barge_clear_ms = _ms(_first(tl.barge_clears, start, start + BARGE_WINDOW_S), start)
            row.silent_ms = _ms(_first(tl.audio_ends, start, start + BARGE_WINDOW_S), start)
        elif line.kind == "backchannel":
            row.interruptions = sum(1 for c in tl.barge_clears if start <= c < end + 1.5)
            row.pause_clears = sum(1 for c in tl.pause_clears if start <= c < end + 1.5)
        rows.append(row)
    return rows


def _first(times: list[float], start: float, until: float) -> float | None:
    return next((t for t in times if start <= t < until), None)


def stt_final_at(rec: CallRecord, tl: Timeline, end: float) -> float | None:
    """When the STT had finalized the audio up to ``end`` (stream clock).

    With the live STT server's records: the first final whose window reaches the end of
    speech (its audio timeline starts at the connection's first audio byte). Without them
    (the scripted oracle): the first final transcript after the end of speech.
    """
    for conn in rec.stt_connections:
        if conn.first_audio_at is None:
            continue
        offset = conn.first_audio_at - tl.t0  # STT audio second 0 on the stream clock
        for m in conn.of("Results"):
            body = m.body
            if body["is_final"] and body["start"] + body["duration"] >= end - offset - 0.05:
                return m.at - tl.t0
    if rec.stt_connections:
        return None
    final = tl.events("final", end - 0.05)
    return final[0][0] if final else None


def _floor(row: LineRow, tl: Timeline, rec: CallRecord, reply: float) -> None:
    """The providers' share of this reply's latency, measured in the same run."""
    if row.line.kind != "dtmf":
        row.stt_final_ms = _ms(stt_final_at(rec, tl, row.end), row.end)
    requests = [r for r in rec.llm_requests if row.start <= tl.stream_t(r.received_at) < reply]
    if requests and requests[-1].first_token_at is not None:
        r = requests[-1]
        row.llm_ttft_ms = (r.first_token_at - r.received_at) * 1000.0
    synths = [q for q in (rec.tts.stats.requests if rec.tts else [])]
    synths = [q for q in synths if row.start <= tl.stream_t(q.requested_at) < reply]
    if synths and synths[-1].first_audio_at is not None:
        q = synths[-1]
        row.tts_first_ms = (q.first_audio_at - q.requested_at) * 1000.0


def probe_counts(rec: CallRecord, event: str, pred: Callable[[Any], bool] | None = None) -> int:
    """How many ``event`` frames passed one probe (the probe that saw the most of them)."""
    per_stage: Counter[str] = Counter()
    for p in rec.probes:
        if p.event == event and (pred is None or pred(p.detail)):
            per_stage[p.stage] += 1
    return max(per_stage.values(), default=0)


# -- printing ------------------------------------------------------------------------------------


def _fmt(value: float | None, width: int = 6) -> str:
    return f"{value:{width}.0f}" if value is not None else " " * (width - 1) + "-"


def _p(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.0f}" if values else "-"


def print_report(records: list[CallRecord], *, header: str) -> None:
    """Print the figures of all calls."""
    print(f"\n{header}")
    rows = [row for rec in records for row in line_rows(rec)]
    _print_lines(rows)
    _print_turns(rows)
    _print_barge_ins(rows)
    _print_keypad(rows)
    _print_commits(records)
    for rec in records:
        r = rec.report
        if r is not None:
            kinds = clear_kinds(rec, r.clears)
            print(
                f"call {rec.name}: {r.duration_s:.1f} s, clears {r.clears} "
                f"({kinds.count(PAUSE)} soft), marks "
                f"{r.marks_echoed}/{r.marks_received}, playback glitches {r.agent_glitches}, "
                f"pauses between segments {r.agent_pauses}"
            )
            if rec.server_clears is not None and len(rec.server_clears) != r.clears:
                print(
                    f"  the call record has {len(rec.server_clears)} clears, the caller got "
                    f"{r.clears}: all counted as barge-in clears"
                )


def _print_lines(rows: list[LineRow]) -> None:
    print("\n== per caller line (stream seconds; replies = agent replies started after it) ==")
    print(
        "call/line              kind        voice    end  replies latency  stt-fin llm-ttft "
        "tts-1st  floor  flags  caller said"
    )
    for r in rows:
        flags = []
        if r.answered_twice:
            flags.append("TWICE")
        if r.over_caller:
            flags.append("OVER")
        if r.line.kind == "backchannel" and (r.interruptions or r.replies):
            flags.append("BC-HIT")
        voice = r.line.voice.split(":")[-1][:8] or "keys"
        print(
            f"{r.call[:18]:>18}/{r.index + 1:<2} {r.line.kind:<11} {voice:<8}{r.end:6.1f} "
            f"{len(r.replies):>6} {_fmt(r.latency_ms, 8)} {_fmt(r.stt_final_ms, 8)} "
            f"{_fmt(r.llm_ttft_ms, 8)} {_fmt(r.tts_first_ms, 7)} {_fmt(r.floor_ms, 6)}  "
            f"{','.join(flags):<6} {r.line.text[:38]}"
        )


def _print_turns(rows: list[LineRow]) -> None:
    talk = [r for r in rows if r.line.kind in TALK_KINDS and not r.line.mid_utterance]
    twice = [r for r in talk if r.answered_twice]
    over = [(r, t) for r in rows for t in r.over_caller]
    print("\n== one utterance, one answer ==")
    print(
        f"caller turns answered twice (2+ replies before the next line): {len(twice)}/{len(talk)}"
    )
    for r in twice:
        print(f"  {r.call}/{r.index + 1}: {len(r.replies)} replies to {r.line.text!r}")
    print(f"agent replies started while the caller was mid-utterance: {len(over)}")
    for r, t in over:
        print(f"  {r.call}/{r.index + 1}: {t - r.start:.2f} s into {r.line.text!r} ({r.line.kind})")
    unanswered = [r for r in talk if not r.replies]
    print(f"caller turns with no reply before the next line: {len(unanswered)}")
    spoken = [r for r in rows if r.line.kind == "turn" and r.latency_ms is not None]
    lat = [r.latency_ms for r in spoken]
    floors = [r.floor_ms for r in spoken if r.floor_ms is not None]
    print("\n== end of speech → first agent audio (spoken turns, ms) ==")
    print(f"latency p50 {_p(lat, 0.5)}, p90 {_p(lat, 0.9)} over {len(lat)} turns")
    for name, values in (
        ("STT final after end of speech", [r.stt_final_ms for r in spoken]),
        ("LLM first token after request", [r.llm_ttft_ms for r in spoken]),
        ("TTS first audio after request", [r.tts_first_ms for r in spoken]),
    ):
        present = [v for v in values if v is not None]
        print(f"  {name}: p50 {_p(present, 0.5)}, p90 {_p(present, 0.9)} (n={len(present)})")
    if floors:
        print(
            f"provider floor (STT final + LLM TTFT + TTS first audio) p50 {_p(floors, 0.5)}; "
            f"latency p50 − floor p50 = {percentile(lat, 0.5) - percentile(floors, 0.5):.0f} ms"
        )


def _print_barge_ins(rows: list[LineRow]) -> None:
    barges = [r for r in rows if r.line.kind == "barge"]
    print("\n== barge-in: caller talks over the agent (ms after onset) ==")
    for r in barges:
        print(
            f"  {r.call}/{r.index + 1}: agent silent at the caller at {_fmt(r.silent_ms)}, "
            f"first clear at {_fmt(r.clear_ms)}, barge-in clear at {_fmt(r.barge_clear_ms)}   "
            f"{r.line.text!r}"
        )
    for name, values in (
        ("onset → clear (any: the pause's soft clear or the barge-in's)", "clear_ms"),
        ("onset → barge-in clear (the reply cut off)", "barge_clear_ms"),
        ("onset → agent silent at the caller (audio stopped playing)", "silent_ms"),
    ):
        present = [getattr(r, values) for r in barges if getattr(r, values) is not None]
        if present:
            print(
                f"{name} over {len(present)}: p50 {statistics.median(present):.0f} ms, "
                f"p95 {percentile(present, 0.95):.0f} ms"
            )
    cut = [r for r in barges if r.barge_clear_ms is not None]
    if len(cut) < len(barges):
        print(f"barge-ins without a barge-in clear: {len(barges) - len(cut)}")
    bcs = [r for r in rows if r.line.kind == "backchannel"]
    print("== backchannels over agent speech ==")
    for r in bcs:
        verdict = "INTERRUPTED" if r.interruptions else "ok, agent went on"
        extra = f", {len(r.replies)} new reply(ies)" if r.replies else ""
        print(
            f"  {r.call}/{r.index + 1} {r.line.text!r}: {r.interruptions} barge-in clear(s), "
            f"{r.pause_clears} soft clear(s) ({verdict}{extra})"
        )
    print(
        f"backchannel interruptions (a reply cut off): {sum(r.interruptions for r in bcs)} over "
        f"{len(bcs)} backchannels; soft clears (the agent stopped at the sound and went on): "
        f"{sum(r.pause_clears for r in bcs)}"
    )


def _print_keypad(rows: list[LineRow]) -> None:
    keys = [r for r in rows if r.line.kind == "dtmf"]
    if not keys:
        return
    print("\n== keypad (DTMF): last key → first agent audio ==")
    for r in keys:
        heard = f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "no reply"
        print(f"  {r.call}/{r.index + 1} {r.line.dtmf!r}: {heard}")


def _print_commits(records: list[CallRecord]) -> None:
    commits = sum(probe_counts(rec, "commit") for rec in records)
    regrets = sum(
        probe_counts(rec, "turn_metrics", lambda d: bool(d.get("regret"))) for rec in records
    )
    print("\n== commit and regret (UserTurnCommittedFrame, TurnMetricsFrame.data['regret']) ==")
    rate = f" = {regrets / commits:.1%}" if commits else ""
    print(f"regrets {regrets} / commits {commits}{rate}")
    requests = [r for rec in records for r in rec.llm_requests]
    cancelled = sum(1 for r in requests if r.outcome == "cancelled")
    print(f"LLM requests {len(requests)}, abandoned mid-stream by the client {cancelled}")
