"""The load benchmark's callers, in their own process: N Twilio callers, each looping one call.

    python bench/load_callers.py --url ws://127.0.0.1:P/media --lines DIR --calls N
        --duration S [--ramp-s R] [--line CONDITION] --out results.json

Each caller is ``voiceagent.emulator.CallerEmulator`` (Twilio's protocol: 20 ms μ-law media in
real time, mark echoes, playback like Twilio's buffer) placing the load script's call (every
line of ``DIR/lines.json`` with its ``.pcm`` audio, PCM16 8 kHz) again and again until
``--duration`` is over; callers start evenly spread over ``--ramp-s``. A call in progress at the
deadline is finished. ``--line`` puts every call on a phone-line condition
(``voiceagent.emulator.conditions``: ``office``, ``lossy``, ``office:jitter_ms=40``, …), each
caller with one of 16 noise and loss seeds. The driver measures itself too: its CPU time, how
late its media messages went out, and its event loop's lag (a 20 ms ticker).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger  # noqa: E402

from voiceagent.emulator.caller import CallerEmulator, CallReport  # noqa: E402
from voiceagent.emulator.conditions import LineCondition, parse_condition  # noqa: E402
from voiceagent.emulator.noise import noise_loop  # noqa: E402
from voiceagent.emulator.script import CallerLine  # noqa: E402

CALL_TIMEOUT_S = 120.0
LINE_SEEDS = 16
"""Distinct noise and loss seeds among the callers (each noise made before the calls start)."""
TICK_S = 0.02


def load_lines(folder: Path) -> list[CallerLine]:
    """The script's lines with their audio (``lines.json`` + ``<n>.pcm``)."""
    items = json.loads((folder / "lines.json").read_text())
    return [
        CallerLine(pcm8k=(folder / f"{n}.pcm").read_bytes(), text=item["text"], pause_after_s=1.0)
        for n, item in enumerate(items)
    ]


def summarize(report: CallReport, caller: int, started: float) -> dict[str, Any]:
    """What the parent needs of one call (JSON-ready)."""
    return {
        "caller": caller,
        "started": started,
        "duration_s": report.duration_s,
        "latencies_ms": [t.latency_ms for t in report.turns],
        "media_received": report.media_received,
        "clears": report.clears,
        "agent_audio_s": [round(t.agent_audio_s, 2) for t in report.turns],
        "glitches": report.agent_glitches,
        "pauses": report.agent_pauses,
        "closed_by_server": report.closed_by_server,
        "close_code": report.close_code,
        "close_reason": report.close_reason,
        "sends_late": report.sends_late,
        "send_late_max_ms": report.send_late_max_ms,
    }


class LagTicker:
    """The driver loop's lag: how late a 20 ms sleep wakes up."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self, until: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not until.is_set():
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            self.samples.append(max(0.0, loop.time() - due))


async def caller_loop(
    n: int,
    args: argparse.Namespace,
    lines: list[CallerLine],
    deadline: float,
    out: list,
    line: LineCondition | None = None,
) -> None:
    """One caller: place the call until the deadline (each call completes)."""
    if line is not None:
        line = dataclasses.replace(line, seed=line.seed + n % LINE_SEEDS)
    await asyncio.sleep(args.ramp_s * n / max(1, args.calls))
    while time.monotonic() < deadline:
        started = time.monotonic()
        emulator = CallerEmulator(args.url, custom_parameters={"From": f"+1555{n:07d}"})
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                report = await emulator.run(
                    lines, lead_in_s=0.5, tail_s=1.0, max_wait_reply_s=8.0, condition=line
                )
        except (RuntimeError, TimeoutError) as e:
            out.append({"caller": n, "started": started, "error": repr(e)})
            await asyncio.sleep(1.0)
            continue
        out.append(summarize(report, n, started))
        if report.closed_by_server and report.duration_s < 1.0:
            await asyncio.sleep(1.0)  # refused (busy): try again a little later


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Drive every caller; return the calls and the driver's own figures."""
    lines = load_lines(Path(args.lines))
    line = parse_condition(args.line) if args.line else None
    if line is not None and line.noise is not None:  # 50–170 ms each: not during the ramp
        for seed in range(line.seed, line.seed + min(LINE_SEEDS, args.calls)):
            noise_loop(line.noise, seed)
    begin_cpu = resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    deadline = began + args.duration
    calls: list[dict[str, Any]] = []
    ticker, stop = LagTicker(), asyncio.Event()
    lag = asyncio.create_task(ticker.run(stop))
    await asyncio.gather(
        *(caller_loop(n, args, lines, deadline, calls, line) for n in range(args.calls))
    )
    stop.set()
    await lag
    end_cpu = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - began
    cpu = (end_cpu.ru_utime - begin_cpu.ru_utime) + (end_cpu.ru_stime - begin_cpu.ru_stime)
    samples = sorted(ticker.samples) or [0.0]
    return {
        "calls": calls,
        "driver": {
            "wall_s": wall,
            "cpu_s": cpu,
            "lag_p99_ms": samples[int(0.99 * (len(samples) - 1))] * 1000.0,
            "lag_max_ms": samples[-1] * 1000.0,
            "rss_mb": end_cpu.ru_maxrss / 1024.0,
        },
    }


def main() -> int:
    """Parse arguments, drive the calls, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--lines", required=True, help="folder with lines.json and <n>.pcm")
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--ramp-s", type=float, default=5.0)
    parser.add_argument("--line", help="phone-line condition of every call (default: clean)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    result = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
