"""What one bench call observed, and the printed report of all calls.

Server-side milestones (``Probe`` events, ``time.monotonic``) are put on the caller emulator's
stream clock with the offset measured from its events that carry "now" (``agent_audio_start``,
``clear``: emitted synchronously as the message arrives), so every figure is relative to what
the caller did: end of speech, start of a barge-in.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.fakes.caller_lines import BenchLine
from bench.fakes.openai_sse import LLMRequest
from bench.fakes.probe import ProbeEvent

GOAL_P50_MS = 250.0
GOAL_CLEAR_P95_MS = 120.0
GOAL_REGRET = 0.02
_INF = math.inf


@dataclass
class CallRecord:
    """Everything one call produced (filled by the bench)."""

    name: str
    lines: list[BenchLine]
    probes: list[ProbeEvent] = field(default_factory=list)
    events: list[tuple[float, str, dict]] = field(default_factory=list)  # (monotonic, kind, data)
    report: Any = None  # CallReport
    parts: Any = None  # CallParts
    stt: Any = None
    tts: Any = None
    transport: Any = None
    llm_requests: list[LLMRequest] = field(default_factory=list)


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
        self.clears: list[float] = []
        for _, kind, data in rec.events:
            if kind == "caller_line":
                self.starts[data["index"]] = data["t"]
            elif kind == "caller_line_end":
                self.ends[data["index"]] = data["t"]
            elif kind == "clear":
                self.clears.append(data["t"])
        self.probes = [(p.t - self.t0, p.stage, p.event, p.detail) for p in rec.probes]

    def first(
        self,
        stage: str,
        event: str,
        after: float,
        before: float = _INF,
        pred: Callable[[Any], bool] | None = None,
    ) -> tuple[float, Any] | None:
        for t, s, e, d in self.probes:
            if s == stage and e == event and after <= t < before and (pred is None or pred(d)):
                return t, d
        return None

    def last(
        self,
        stage: str,
        event: str,
        before: float,
        after: float = -_INF,
        pred: Callable[[Any], bool] | None = None,
    ) -> tuple[float, Any] | None:
        found = None
        for t, s, e, d in self.probes:
            if t >= before:
                break
            if s == stage and e == event and t >= after and (pred is None or pred(d)):
                found = (t, d)
        return found


@dataclass
class TurnRow:
    """One reply's milestones, in ms after the caller's end of speech."""

    call: str
    index: int
    kind: str
    text: str
    latency_ms: float | None
    marks: dict[str, float | None]
    hit: bool | None
    onset_to_vad_ms: float | None = None
    commits: int = 0  # commits while the caller said this line (more than 1: regretted)
    wait_ms: float | None = None  # silence the router required after the VAD stop
    learned_pause_ms: float | None = None


def _ms(t: float | None, ref: float) -> float | None:
    return None if t is None else (t - ref) * 1000.0


def turn_rows(rec: CallRecord) -> list[TurnRow]:
    """Breakdown of every reply to a ``turn`` or ``barge`` line."""
    tl = Timeline(rec)
    turns = {t.index: t for t in rec.report.turns} if rec.report else {}
    router_turns = rec.parts.processors["router"].stats.turns if rec.parts else []
    rows = []
    for i, line in enumerate(rec.lines):
        if line.kind not in ("turn", "barge") or i not in tl.ends:
            continue
        start, end = tl.starts.get(i, tl.ends[i]), tl.ends[i]
        report = turns.get(i)
        heard = report.first_agent_audio_s if report else None
        horizon = (heard if heard is not None else end + 6.0) + 0.5
        vad_start = tl.first("stt", "vad_start", start - 0.05, end)
        vad = tl.first("stt", "vad_stop", end - 0.05, horizon)
        final = tl.first("stt", "final", vad[0] if vad else end, horizon)
        until = heard if heard is not None else horizon
        commit = tl.last("router", "commit", until, start + 0.05)
        commits = sum(
            1 for t, s, e, _ in tl.probes if s == "router" and e == "commit" and start < t < until
        )
        marks: dict[str, float | None] = {"vad_stop": vad and vad[0], "final": final and final[0]}
        hit = None
        record: dict[str, Any] = {}
        if commit is not None:
            turn_id, hit, _ = commit[1]
            record = next((r for r in router_turns if r.get("turn_id") == turn_id), {})
            spec = tl.last("router", "speculate", commit[0], pred=lambda d, t=turn_id: d[0] == t)
            gen = tl.first("llm", "generation", start, horizon, lambda d, t=turn_id: d[0] == t)
            token = tl.first("llm", "first_text", gen[0], horizon) if gen else None
            after = max(commit[0], token[0] if token else commit[0]) - 1e-3
            release = tl.first("hold", "first_text", after, horizon)
            chunk = tl.first("aggregator", "chunk", release[0], horizon) if release else None
            audio = tl.first("tts", "first_tts_audio", chunk[0], horizon) if chunk else None
            media = tl.first("tts", "bot_started", audio[0], horizon) if audio else None
            marks.update(
                speculate=spec and spec[0] if hit else None,
                commit=commit[0],
                llm_token=token and token[0],
                released=release and release[0],
                chunk=chunk and chunk[0],
                tts_audio=audio and audio[0],
                media_sent=media and media[0],
            )
        marks["heard"] = heard
        rows.append(
            TurnRow(
                call=rec.name,
                index=i,
                kind=line.kind,
                text=line.text,
                latency_ms=report.latency_ms if report else None,
                marks={k: _ms(v, end) for k, v in marks.items()},
                hit=hit,
                onset_to_vad_ms=_ms(vad_start and vad_start[0], start),
                commits=commits,
                wait_ms=_ms(record.get("required_wait_s"), 0.0),
                learned_pause_ms=_ms(record.get("learned_pause_s"), 0.0),
            )
        )
    return rows


@dataclass
class BargeRow:
    """One barge-in, in ms after the caller started talking over the agent."""

    call: str
    text: str
    vad_start_ms: float | None
    first_word_ms: float | None
    decision_ms: float | None
    clear_ms: float | None

    @property
    def decision_to_clear_ms(self) -> float | None:
        if self.decision_ms is None or self.clear_ms is None:
            return None
        return self.clear_ms - self.decision_ms


def barge_rows(rec: CallRecord) -> tuple[list[BargeRow], list[tuple[str, int]]]:
    """Barge-ins (onset → VAD, gate decision, clear) and clears during backchannels."""
    tl = Timeline(rec)
    barges, backchannels = [], []
    for i, line in enumerate(rec.lines):
        onset = tl.starts.get(i)
        if onset is None:
            continue
        if line.kind == "barge":
            vad = tl.first("stt", "vad_start", onset - 0.05, onset + 3.0)
            word = tl.first("stt", "partial", onset, onset + 5.0)
            decision = tl.first("barge_in", "interruption", onset, onset + 5.0)
            clear = next((c for c in tl.clears if onset <= c < onset + 5.0), None)
            barges.append(
                BargeRow(
                    call=rec.name,
                    text=line.text,
                    vad_start_ms=_ms(vad and vad[0], onset),
                    first_word_ms=_ms(word and word[0], onset),
                    decision_ms=_ms(decision and decision[0], onset),
                    clear_ms=_ms(clear, onset),
                )
            )
        elif line.kind == "backchannel":
            until = tl.ends.get(i, onset) + 1.5
            backchannels.append((line.text, sum(1 for c in tl.clears if onset <= c < until)))
    return barges, backchannels


def _fmt(value: float | None, width: int = 6) -> str:
    return f"{value:{width}.0f}" if value is not None else " " * (width - 1) + "-"


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _sum_stats(records: list[CallRecord], stage: str, names: tuple[str, ...]) -> dict[str, int]:
    totals = dict.fromkeys(names, 0)
    for rec in records:
        stats = getattr(rec.parts.processors[stage], "stats", None) if rec.parts else None
        for name in names:
            totals[name] += int(getattr(stats, name, 0) or 0)
    return totals


def talked_over(rec: CallRecord) -> list[tuple[str, float]]:
    """Agent replies that started while the caller was still mid-utterance.

    An agent utterance starting more than 0.3 s into a caller line and before its end, or in
    the pause after a ``pause`` line, means a turn was committed too early and the caller
    heard the start of a reply to half a sentence. Returns (line text, seconds into the line).
    """
    tl = Timeline(rec)
    starts = rec.report.agent_utterances_s if rec.report else []
    out = []
    for i, line in enumerate(rec.lines):
        begin, end = tl.starts.get(i), tl.ends.get(i)
        if begin is None or end is None:
            continue
        until = tl.starts.get(i + 1, end) if line.kind == "pause" else end
        out += [(line.text, t - begin) for t in starts if begin + 0.3 < t < until]
    return out


def stray_clears(rec: CallRecord) -> int:
    """Clears that are not the answer to a scripted barge-in (within 1.5 s of its onset)."""
    tl = Timeline(rec)
    onsets = [
        tl.starts[i] for i, ln in enumerate(rec.lines) if ln.kind == "barge" and i in tl.starts
    ]
    return sum(1 for c in tl.clears if not any(o <= c < o + 1.5 for o in onsets))


_COLS = (
    "vad_stop",
    "final",
    "speculate",
    "commit",
    "llm_token",
    "released",
    "chunk",
    "tts_audio",
    "media_sent",
    "heard",
)


def print_report(records: list[CallRecord], *, shape_text: str) -> None:
    """Print the figures of all calls."""
    print(f"\n{shape_text}")
    _print_latency([row for rec in records for row in turn_rows(rec)])
    barges, backchannels = [], []
    for rec in records:
        b, bc = barge_rows(rec)
        barges += b
        backchannels += bc
    _print_barge_ins(barges)
    _print_regret(records)
    print("\n== backchannels over agent speech ==")
    for text, n in backchannels:
        print(f"  {text!r}: {n} clear(s) {'(FALSE CLEAR)' if n else '(ok, agent kept talking)'}")
    gate = _sum_stats(
        records,
        "barge_in",
        (
            "interruptions",
            "backchannels_ignored",
            "echo_guarded",
            "false_interruptions",
            "resumes",
        ),
    )
    print(f"false clears on backchannels: {sum(n for _, n in backchannels)}; gate {gate}")
    print(f"watchdog {_sum_stats(records, 'watchdog', ('reruns', 'fallbacks', 'reprompts'))}")
    for rec in records:
        r = rec.report
        if r is not None:
            print(
                f"call {rec.name}: {r.duration_s:.1f} s, clears {r.clears}, marks "
                f"{r.marks_echoed}/{r.marks_received}, playback glitches {r.agent_glitches}, "
                f"pauses between segments {r.agent_pauses}"
            )


def _print_latency(rows: list[TurnRow]) -> None:
    print("\n== caller end of speech → first agent audio (ms after the caller's last sample) ==")
    print(
        "line        kind "
        + "".join(f"{c[:8]:>9}" for c in _COLS)
        + "  hit wait/learned commits  caller said"
    )
    for r in rows:
        cells = "".join(f"{_fmt(r.marks.get(c), 9)}" for c in _COLS)
        hit = "-" if r.hit is None else ("yes" if r.hit else "no")
        wait = f"{_fmt(r.wait_ms, 4)}/{_fmt(r.learned_pause_ms, 4).strip():<4}"
        print(
            f"{r.call[:8]:>8}/{r.index + 1:<2} {r.kind:<5}{cells}  {hit:>3} {wait} "
            f"{r.commits:>6}   {r.text[:34]}"
        )
    normal = [r.latency_ms for r in rows if r.kind == "turn" and r.latency_ms is not None]
    after_barge = [r.latency_ms for r in rows if r.kind == "barge" and r.latency_ms is not None]
    missing = sum(1 for r in rows if r.latency_ms is None)
    if normal:
        p50, p90 = statistics.median(normal), percentile(normal, 0.9)
        verdict = "meets" if p50 <= GOAL_P50_MS else "MISSES"
        print(
            f"\nlatency over {len(normal)} normal turns: p50 {p50:.0f} ms, p90 {p90:.0f} ms "
            f"(min {min(normal):.0f}, max {max(normal):.0f}) — {verdict} goal p50 ≤ "
            f"{GOAL_P50_MS:.0f} ms"
        )
    if after_barge:
        print(f"replies after a barge-in: {', '.join(f'{v:.0f}' for v in after_barge)} ms")
    if missing:
        print(f"turns without a reply heard: {missing}")
    vad_lags = [r.onset_to_vad_ms for r in rows if r.onset_to_vad_ms is not None]
    if vad_lags:
        print(
            f"caller onset → VAD start: median {statistics.median(vad_lags):.0f} ms, "
            f"min {min(vad_lags):.0f}, max {max(vad_lags):.0f} (over {len(vad_lags)} lines)"
        )
    medians = {c: _median([r.marks.get(c) for r in rows if r.kind == "turn"]) for c in _COLS}
    print(
        "median milestones of normal turns (ms after end of speech): "
        + ", ".join(f"{c} {_fmt(v, 0).strip()}" for c, v in medians.items())
    )


def _print_barge_ins(barges: list[BargeRow]) -> None:
    print("\n== barge-in: caller starts talking over the agent (ms after onset) ==")
    for b in barges:
        print(
            f"  {b.call[:16]:<16} VAD start {_fmt(b.vad_start_ms)}  first word "
            f"{_fmt(b.first_word_ms)}  gate decision "
            f"{_fmt(b.decision_ms)}  clear at caller {_fmt(b.clear_ms)}  decision→clear "
            f"{_fmt(b.decision_to_clear_ms)}   {b.text[:40]}"
        )
    clears = [b.clear_ms for b in barges if b.clear_ms is not None]
    if clears:
        p95 = percentile(clears, 0.95)
        verdict = "meets" if p95 <= GOAL_CLEAR_P95_MS else "MISSES"
        print(
            f"onset → clear over {len(clears)}: p50 {statistics.median(clears):.0f} ms, p95 "
            f"{p95:.0f} ms — {verdict} goal p95 ≤ {GOAL_CLEAR_P95_MS:.0f} ms"
        )
        d2c = [b.decision_to_clear_ms for b in barges if b.decision_to_clear_ms is not None]
        if d2c:
            print(
                f"gate decision → clear at caller: p50 {statistics.median(d2c):.1f} ms, "
                f"p95 {percentile(d2c, 0.95):.1f} ms"
            )
    if len(clears) < len(barges):
        print(f"barge-ins without a clear: {len(barges) - len(clears)}")


def _print_regret(records: list[CallRecord]) -> None:
    router = _sum_stats(
        records,
        "router",
        (
            "commits",
            "regrets",
            "speculative_starts",
            "speculative_hits",
            "cancellations",
            "replies_cancelled",
        ),
    )
    print("\n== commit and regret ==")
    if router["commits"]:
        rate = router["regrets"] / router["commits"]
        verdict = "meets" if rate <= GOAL_REGRET else "MISSES"
        print(
            f"regrets {router['regrets']} / commits {router['commits']} = {rate:.1%} — {verdict} "
            f"goal ≤ {GOAL_REGRET:.0%}"
        )
    print(
        f"speculative starts {router['speculative_starts']}, hits {router['speculative_hits']}, "
        f"cancellations {router['cancellations']}, replies cancelled "
        f"{router['replies_cancelled']}"
    )
    requests = [r for rec in records for r in rec.llm_requests]
    cancelled = sum(1 for r in requests if r.outcome == "cancelled")
    print(f"LLM requests {len(requests)}, abandoned mid-stream by the client {cancelled}")
    early = [(rec.name, text, t) for rec in records for text, t in talked_over(rec)]
    print(f"agent replies started while the caller was mid-utterance: {len(early)}")
    for name, text, t in early:
        print(f"  {name}: {t:.2f} s into {text!r}")
    print(f"clears not caused by a scripted barge-in: {sum(stray_clears(r) for r in records)}")
