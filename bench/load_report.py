"""Figures of one load level (``bench/load.py``) and the table of a curve."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from bench.pyspy_summary import report as profile_report

INSTRUMENT = (
    "instrument: bench/load.py — CallerEmulator callers (Twilio Media Streams over loopback, "
    "Piper-spoken lines, playback like Twilio's buffer) in their own process; `voiceagent serve` "
    "in its own process; in a third, bench.fakes.deepgram_live's SCRIPTED Deepgram-protocol STT "
    "(told each line's text: not recognition), a Deepgram-protocol TTS and an OpenAI SSE LLM; "
    "CPU and RSS of the server's process tree by psutil"
)
_SAMPLE = re.compile(r'^voiceagent_(\w+)\{(\w+)="([^"]*)"\} (\S+)$')


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def server_figures(
    samples: list[tuple[float, float, float]],
    idle: tuple[float, float, float],
    end: tuple[float, float, float],
    steady_from: float,
    steady_to: float,
    calls: int,
) -> dict[str, Any]:
    """CPU (cores, per call) over the steady window and RSS (idle, loaded, trend)."""
    steady = [s for s in samples if steady_from <= s[0] <= steady_to] or samples[-2:]
    (t0, c0, _), (t1, c1, _) = steady[0], steady[-1]
    cores = (c1 - c0) / (t1 - t0) if t1 > t0 else float("nan")
    rss = [s[2] for s in steady]
    mean_rss = sum(rss) / len(rss)
    slope = float("nan")
    if len(steady) >= 3:
        ts = [s[0] for s in steady]
        mt = sum(ts) / len(ts)
        var = sum((t - mt) ** 2 for t in ts)
        if var > 0:
            slope = sum((t - mt) * (r - mean_rss) for t, r in zip(ts, rss, strict=True)) / var
    every = max(1, len(steady) // 10)
    return {
        "cores": cores,
        "core_share_per_call": cores / calls,
        "cpu_s_per_call_min": 60.0 * cores / calls,
        "rss_idle_mb": idle[2],
        "rss_loaded_mb": mean_rss,
        "rss_peak_mb": max(s[2] for s in samples),
        "rss_end_mb": end[2],
        "rss_per_call_mb": (mean_rss - idle[2]) / calls,
        "rss_slope_mb_per_min": slope * 60.0,
        "rss_series": [(round(s[0] - steady[0][0]), round(s[2], 1)) for s in steady[::every]],
        "steady_s": t1 - t0,
    }


def metric_counts(text: str) -> dict[str, Counter]:
    """Labelled counters of ``/metrics`` (e.g. protocol errors by kind), non-zero only."""
    out: dict[str, Counter] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and float(match[4]) > 0:
            out.setdefault(match[1], Counter())[match[3]] += int(float(match[4]))
    return out


def caller_figures(result: dict[str, Any]) -> dict[str, Any]:
    """Latency, answered turns, underruns, closes and the driver's own load."""
    calls = result["callers"]["calls"]
    driver = result["callers"]["driver"]
    failed = [c for c in calls if "error" in c]
    placed = [c for c in calls if "error" not in c]
    refused = [c for c in placed if c["close_code"] == 1013]
    served = [c for c in placed if c["close_code"] != 1013]
    latencies = [ms for c in served for ms in c["latencies_ms"] if ms is not None]
    turns = sum(len(c["latencies_ms"]) for c in served)
    media = sum(c["media_received"] for c in served)
    glitches = sum(c["glitches"] for c in served)
    clears = [c.get("clears", 0) for c in served]
    closes = Counter(
        f"{c['close_code']} {c['close_reason'][:60]}".strip()
        for c in served
        if c["closed_by_server"]
    )
    sends = sum(c["duration_s"] for c in placed) / 0.02
    late = sum(c["sends_late"] for c in placed)
    driver_core = driver["cpu_s"] / driver["wall_s"]
    late_share = late / sends if sends else 0.0
    bottleneck = driver_core > 0.85 or late_share > 0.005 or driver["lag_p99_ms"] > 20.0
    return {
        "calls_placed": len(placed),
        "calls_failed_to_connect": len(failed),
        "calls_refused_busy": len(refused),
        "turns": turns,
        "turns_answered": len(latencies),
        "p50_ms": percentile(latencies, 0.5),
        "p90_ms": percentile(latencies, 0.9),
        "agent_media": media,
        "underruns": glitches,
        "underrun_share": glitches / media if media else 0.0,
        "closed_by_server": dict(closes),
        "clears": sum(clears),
        "calls_with_clears": sum(1 for n in clears if n),
        "driver_core": driver_core,
        "driver_late_share": late_share,
        "driver_late_max_ms": max((c["send_late_max_ms"] for c in placed), default=0.0),
        "driver_lag_p99_ms": driver["lag_p99_ms"],
        "driver_bottleneck": bottleneck,
    }


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def print_level(result: dict[str, Any]) -> None:
    """Every figure of one level, each with its instrument."""
    c = caller_figures(result)
    s = result["server"]
    result["figures"] = c
    print(INSTRUMENT)
    print(f"the callers' line: {result.get('line', 'clean line')}")
    print(
        f"load average before {result['load_before'][0]:.2f}, after "
        f"{result['load_after'][0]:.2f}; other busy processes: "
        f"{', '.join(result['elsewhere']) or 'none ≥ 10 %'}"
    )
    print(
        f"calls placed {c['calls_placed']} (refused busy {c['calls_refused_busy']}, "
        f"failed to connect {c['calls_failed_to_connect']})"
    )
    print(
        f"end of speech → first agent audio (emulator): p50 {_ms(c['p50_ms'])} ms, "
        f"p90 {_ms(c['p90_ms'])} ms; turns answered {c['turns_answered']}/{c['turns']}"
    )
    print(
        f"playback underruns (emulator's Twilio buffer ran dry inside a segment): "
        f"{c['underruns']} in {c['agent_media']} agent media messages "
        f"({100 * c['underrun_share']:.3f} %)"
    )
    print(f"calls closed by the server: {c['closed_by_server'] or 'none'}")
    print(
        f"`clear`s the callers got (a pause at their sound, or a barge-in): {c['clears']} "
        f"in {c['calls_with_clears']} of {c['calls_placed'] - c['calls_refused_busy']} calls"
    )
    counts = metric_counts(result["metrics"])
    print(
        f"server /metrics (one worker): ended {dict(counts.get('calls_ended_total', {}))}, "
        f"protocol errors {dict(counts.get('protocol_errors_total', {})) or 'none'}, "
        f"rejected {dict(counts.get('requests_rejected_total', {})) or 'none'}"
    )
    print(
        f"server CPU (psutil, steady {s['steady_s']:.0f} s): {s['cores']:.2f} cores, "
        f"{100 * s['core_share_per_call']:.1f} % of a core per call, "
        f"{s['cpu_s_per_call_min']:.2f} CPU s per call-minute"
    )
    print(
        f"server RSS (psutil): idle {s['rss_idle_mb']:.0f} MB, loaded {s['rss_loaded_mb']:.0f} MB "
        f"(peak {s['rss_peak_mb']:.0f}, end {s['rss_end_mb']:.0f}), "
        f"{s['rss_per_call_mb']:.1f} MB per call, trend {s['rss_slope_mb_per_min']:+.1f} MB/min"
    )
    if s["steady_s"] >= 120:
        print(f"  RSS over the run (s, MB): {s['rss_series']}")
    print(
        f"callers' process (resource.getrusage, its own 20 ms ticker): "
        f"{100 * c['driver_core']:.0f} % of a core, media sent ≥ 20 ms late "
        f"{100 * c['driver_late_share']:.2f} % (worst {c['driver_late_max_ms']:.0f} ms), "
        f"loop lag p99 {c['driver_lag_p99_ms']:.0f} ms → "
        + ("THE DRIVER WAS A BOTTLENECK" if c["driver_bottleneck"] else "not the bottleneck")
    )
    print(f"providers' process CPU: {result['fakes_cpu_s']:.0f} s; STT: {result['stt_instrument']}")
    if result.get("profile") and Path(result["profile"]).exists():
        print("\nserver profile (py-spy record, all threads):")
        print(profile_report(Path(result["profile"]).read_text()))


def print_table(results: list[dict[str, Any]]) -> None:
    """The curve: one row per level."""
    print(f"\n{INSTRUMENT}")
    print(
        "| calls | p50 / p90 ms | answered | underruns | closed by server | refused busy "
        "| server cores | CPU s per call-min | RSS MB/call | load avg | driver bottleneck |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        c, s = r["figures"], r["server"]
        closed = sum(c["closed_by_server"].values())
        print(
            f"| {r['calls']} | {_ms(c['p50_ms'])} / {_ms(c['p90_ms'])} "
            f"| {c['turns_answered']}/{c['turns']} "
            f"| {c['underruns']} ({100 * c['underrun_share']:.2f} %) | {closed} "
            f"| {c['calls_refused_busy']} | {s['cores']:.2f} "
            f"| {s['cpu_s_per_call_min']:.2f} | {s['rss_per_call_mb']:.1f} "
            f"| {r['load_before'][0]:.1f}–{r['load_after'][0]:.1f} "
            f"| {'yes' if c['driver_bottleneck'] else 'no'} |"
        )
