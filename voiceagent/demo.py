"""``voiceagent demo``: the offline default holding a real multi-turn phone call on this machine.

Starts the server in-process, synthesizes the caller's lines once (Piper, then 8 kHz μ-law like
a phone line), drives the Twilio caller emulator through the scripted call, prints a live
transcript of both sides with per-turn latency, and writes what the caller heard to a WAV.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voiceagent.settings import Settings


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


def synthesize_caller_lines(voice: Any, lines: tuple[DemoLine, ...], cache_dir: Path) -> list[Path]:
    """Speak each line with Piper into a cached WAV (slower and lower than the agent's voice)."""
    from piper.config import SynthesisConfig

    cache_dir.mkdir(parents=True, exist_ok=True)
    config = SynthesisConfig(length_scale=1.08, noise_scale=0.6)
    paths = []
    for line in lines:
        digest = hashlib.sha1(line.text.encode()).hexdigest()[:12]
        path = cache_dir / f"caller-{digest}.wav"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            with wave.open(str(tmp), "wb") as wav:
                voice.synthesize_wav(line.text, wav, syn_config=config)
            tmp.replace(path)
        paths.append(path)
    return paths


def trim_silence(
    pcm16: bytes, rate: int = 8000, *, threshold: int = 300, margin_s: float = 0.03
) -> bytes:
    """Cut leading/trailing near-silence, so a line's audio ends when the caller stops speaking."""
    samples = np.frombuffer(pcm16, dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return pcm16
    margin = int(margin_s * rate)
    start = max(0, int(loud[0]) - margin)
    end = min(samples.size, int(loud[-1]) + margin)
    return samples[start:end].tobytes()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run_demo(args: Any) -> int:
    """Run the scripted call; return 0 when every caller turn got a spoken reply."""
    from voiceagent.emulator.audio import load_wav_pcm8k, write_wav
    from voiceagent.emulator.caller import CallerEmulator
    from voiceagent.emulator.script import CallerLine
    from voiceagent.pipelines.receptionist import ReceptionistBot
    from voiceagent.server.app import run_server

    # In-process loopback call: no public exposure, so no Twilio signature to check.
    settings = Settings.from_env(
        server={"host": "127.0.0.1", "port": getattr(args, "port", 0), "twilio_auth_token": None}
    )
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - t0:5.1f}s] {msg}", flush=True)

    def on_transcript(who: str, text: str, info: dict) -> None:
        if who == "caller":
            print(f"    caller (as transcribed): {text}", flush=True)
        else:
            cut = " [interrupted]" if info.get("interrupted") else ""
            print(f"    agent  (as heard):       {text}{cut}", flush=True)

    bot = ReceptionistBot(settings, on_transcript=on_transcript)
    progress("loading the offline stack (first run assembles weights; later runs are quick)")
    for reason in bot.resources.choice.reasons:
        progress(f"stage {reason}")
    await bot.start(progress=progress)

    voice = bot.resources.piper_voice
    if voice is None:
        from piper import PiperVoice

        from voiceagent.services.local.weights import resolve_piper_voice

        model, config = resolve_piper_voice(settings.local)
        voice = await asyncio.to_thread(PiperVoice.load, str(model), config_path=str(config))
    progress("synthesizing the caller's lines")
    wavs = await asyncio.to_thread(
        synthesize_caller_lines, voice, DEMO_SCRIPT, settings.local.cache_dir / "demo"
    )
    script = [
        CallerLine(
            pcm8k=trim_silence(load_wav_pcm8k(path)),
            pause_after_s=line.pause_after_s,
            text=line.text,
            wait_for_reply=line.wait_for_reply,
        )
        for line, path in zip(DEMO_SCRIPT, wavs, strict=True)
    ]

    port_ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        run_server(settings, bot, on_started=lambda port: port_ready.set_result(port))
    )
    try:
        port = await asyncio.wait_for(port_ready, 30)
        progress(f"server on 127.0.0.1:{port}; calling it\n")

        def on_event(kind: str, data: dict) -> None:
            if kind == "caller_line":
                print(f"  caller says: {data.get('text', '')}", flush=True)

        report = await CallerEmulator(
            f"ws://127.0.0.1:{port}/media",
            custom_parameters={"From": "+15550100", "To": "+15550199"},
        ).run(script, on_event=on_event)
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
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
            f"latency p50 {statistics.median(latencies):.0f} ms, p90 "
            f"{_percentile(latencies, 0.9):.0f} ms over {len(latencies)} turns; "
            f"agent spoke into a mid-sentence pause {cut_ins}x; "
            f"marks {report.marks_echoed}/{report.marks_received} echoed, clears {report.clears}"
        )
    print(f"caller-heard audio: {out} ({len(report.heard_pcm8k) / 16000:.1f} s)")
    return 0 if len(latencies) >= 4 else 1
