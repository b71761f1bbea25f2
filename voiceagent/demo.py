"""``voiceagent demo``: the offline default holding a real multi-turn phone call on this machine.

Starts the server in-process, synthesizes the caller's lines once (Piper, then 8 kHz μ-law like
a phone line), drives the Twilio caller emulator through the scripted call, prints a live
transcript of both sides with per-turn latency, and writes what the caller heard to a WAV.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voiceagent.emulator.voice import caller_audio, synthesize_caller_lines, trim_silence

__all__ = [
    "DEMO_SCRIPT",
    "DemoLine",
    "demo_bot",
    "latency_summary",
    "run_demo",
    "synthesize_caller_lines",
    "trim_silence",
]


@dataclass(frozen=True)
class DemoLine:
    """One thing the caller says; ``wait_for_reply=False`` continues after a mid-sentence pause."""

    text: str
    pause_after_s: float = 1.2
    wait_for_reply: bool = True


DEMO_SCRIPT: tuple[DemoLine, ...] = (
    DemoLine("Hi, I'd like to book a teeth cleaning, please."),
    DemoLine("Do you have anything open next Tuesday,", pause_after_s=0.6, wait_for_reply=False),
    DemoLine("maybe in the afternoon?"),
    DemoLine("How much does a cleaning cost without insurance?"),
    DemoLine("And what time do you close on Fridays?"),
    DemoLine("Great, thank you so much. Goodbye!"),
)


def demo_bot(args: Any, settings: Any, on_transcript: Any) -> Any:
    """The bot of ``--bot MODULE:FACTORY`` (default: the receptionist), made like ``serve`` does.

    A factory that takes ``on_transcript`` is given it (both sides' live transcript is then
    printed); any other is called with the settings alone.

    Raises:
        ValueError: the spec is malformed or names nothing callable.
    """
    from voiceagent.cli import DEFAULT_BOT
    from voiceagent.server.workers import load_bot_factory

    factory = load_bot_factory(getattr(args, "bot", None) or DEFAULT_BOT)
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        parameters = []
    if any(p.name == "on_transcript" or p.kind is p.VAR_KEYWORD for p in parameters):
        return factory(settings, on_transcript=on_transcript)
    return factory(settings)


def latency_summary(latencies_ms: Sequence[float]) -> str:
    """``latency p50 … ms, p90 … ms over N turns`` (numpy's linear interpolation between ranks).

    Raises:
        ValueError: no latencies.
    """
    if not latencies_ms:
        raise ValueError("no latencies to summarize")
    p50, p90 = np.percentile(np.asarray(latencies_ms, dtype=float), [50, 90])
    return f"latency p50 {p50:.0f} ms, p90 {p90:.0f} ms over {len(latencies_ms)} turns"


async def run_demo(args: Any) -> int:
    """Run the scripted call; return 0 when every caller turn got a spoken reply."""
    from voiceagent.emulator.audio import write_wav
    from voiceagent.emulator.caller import CallerEmulator
    from voiceagent.emulator.script import CallerLine
    from voiceagent.emulator.voice import load_caller_voice
    from voiceagent.server.in_process import loopback_settings, serve_in_process

    settings = loopback_settings(port=getattr(args, "port", 0))
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - t0:5.1f}s] {msg}", flush=True)

    def on_transcript(who: str, text: str, info: dict) -> None:
        if who == "caller" and info.get("revision"):
            print(f"    caller (revised):        {text}", flush=True)
        elif who == "caller":
            print(f"    caller (as transcribed): {text}", flush=True)
        else:
            cut = " [interrupted]" if info.get("interrupted") else ""
            print(f"    agent  (as heard):       {text}{cut}", flush=True)

    bot = demo_bot(args, settings, on_transcript)
    resources = getattr(bot, "resources", None)
    progress("loading the offline stack (first run assembles weights; later runs are quick)")
    for reason in getattr(getattr(resources, "choice", None), "reasons", []):
        progress(f"stage {reason}")
    await bot.start(progress=progress)

    voice = await load_caller_voice(settings.local, getattr(resources, "piper_voice", None))
    progress("synthesizing the caller's lines")
    wavs = await asyncio.to_thread(
        synthesize_caller_lines, voice, DEMO_SCRIPT, settings.local.cache_dir / "demo"
    )
    script = [
        CallerLine(
            pcm8k=caller_audio(path),
            pause_after_s=line.pause_after_s,
            text=line.text,
            wait_for_reply=line.wait_for_reply,
        )
        for line, path in zip(DEMO_SCRIPT, wavs, strict=True)
    ]

    try:
        async with serve_in_process(settings, bot) as url:
            progress(f"server on {url.removeprefix('ws://').removesuffix('/media')}; calling it\n")

            def on_event(kind: str, data: dict) -> None:
                if kind == "caller_line":
                    print(f"  caller says: {data.get('text', '')}", flush=True)

            report = await CallerEmulator(
                url, custom_parameters={"From": "+15550100", "To": "+15550199"}
            ).run(script, on_event=on_event)
    finally:
        await bot.stop()

    out = Path(getattr(args, "out", "demo-heard.wav"))
    write_wav(out, report.heard_pcm8k, 8000)
    print("\nturn  latency (caller end of speech → first agent audio)")
    latencies = []
    cut_ins = 0
    for turn, line in zip(report.turns, DEMO_SCRIPT, strict=False):
        if turn.latency_ms is None:
            shown = "no reply" if line.wait_for_reply else "(caller goes on)"
        elif line.wait_for_reply:
            latencies.append(turn.latency_ms)
            shown = f"{turn.latency_ms:7.0f} ms"
        else:  # the agent answered a mid-sentence pause: commit-and-regret, not a turn latency
            cut_ins += 1
            shown = f"cut in after {turn.latency_ms:.0f} ms"
        print(f"{turn.index + 1:>4}  {shown:>16}   {turn.caller_text}")
    if latencies:
        print(
            f"{latency_summary(latencies)}; "
            f"agent spoke into a mid-sentence pause {cut_ins}x; "
            f"marks {report.marks_echoed}/{report.marks_received} echoed, clears {report.clears}"
        )
    print(f"caller-heard audio: {out} ({len(report.heard_pcm8k) / 16000:.1f} s)")
    return 0 if len(latencies) >= 4 else 1
