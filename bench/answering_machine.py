"""What the answering machine detector costs per 20 ms frame, and whether it finds the beep.

    .venv/bin/python bench/answering_machine.py [--calls 20]

Audio: an espeak-ng greeting ("…leave a message after the tone"), 0.5 s of quiet, a 1 kHz
beep and 2 s of quiet, through 8 kHz μ-law and up to the pipeline's 16 kHz, as the server
feeds it. Instrument: ``time.perf_counter_ns`` around each frame's work in the detector stage
(the ``BeepDetector`` on the frame, then ``MachineDetection.tick``), on this machine, while
the detector is active (the first seconds of an outbound call; afterwards it does nothing).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voiceagent.emulator.audio import load_wav_pcm8k, ulaw_encode  # noqa: E402
from voiceagent.processors.beep import BeepDetector  # noqa: E402
from voiceagent.processors.machine_detection import MachineDetection  # noqa: E402
from voiceagent.transports.twilio.codec import ulaw_to_pcm16  # noqa: E402

GREETING = (
    "Hi, you have reached Sam Taylor. I am not able to take your call right now. "
    "Please leave a message after the tone."
)
RATE = 16000
FRAME_BYTES = 2 * RATE // 50


def call_audio(folder: Path) -> tuple[bytes, float]:
    """The machine's side of the call at 16 kHz, and when its beep ends (s)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        sys.exit("needs espeak-ng")
    wav = folder / "greeting.wav"
    subprocess.run([espeak, "-s", "160", "-w", str(wav), GREETING], check=True, timeout=30)
    speech = np.frombuffer(load_wav_pcm8k(wav), dtype="<i2").astype(np.float64)
    t = np.arange(4000) / 8000
    beep = 9000 * np.sin(2 * np.pi * 1000 * t)
    pcm8k = np.concatenate([speech, np.zeros(4000), beep, np.zeros(16000)]).astype("<i2")
    decoded = ulaw_to_pcm16(ulaw_encode(pcm8k.tobytes()))
    samples = np.frombuffer(decoded, dtype="<i2").astype(np.float32) / 32768.0
    pcm16k = (soxr.resample(samples, 8000, RATE) * 32767).astype("<i2").tobytes()
    return pcm16k, (speech.size + 8000) / 8000


def one_call(pcm16k: bytes) -> tuple[list[float], float | None]:
    """Per-frame cost (µs) and when the beep's end was found (s of audio)."""
    beeps, core = BeepDetector(), MachineDetection()
    core.speech_started(0.0)  # the greeting starts at once (the VAD's frames are not timed here)
    costs: list[float] = []
    found = None
    at = 0.0
    for start in range(0, len(pcm16k) - FRAME_BYTES + 1, FRAME_BYTES):
        frame = pcm16k[start : start + FRAME_BYTES]
        at += 0.02
        t0 = time.perf_counter_ns()
        beep = beeps.feed(frame, RATE)
        decision = core.beep(at, beep) if beep is not None else None
        decision = decision or core.tick(at)
        costs.append((time.perf_counter_ns() - t0) / 1000.0)
        if decision is not None and decision.answered_by == "machine_end_beep":
            found = at
    return costs, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pcm16k, beep_end = call_audio(Path(tmp))
    costs: list[float] = []
    found = []
    for _ in range(args.calls):
        call_costs, at = one_call(pcm16k)
        costs.extend(call_costs)
        found.append(at)
    ordered = sorted(costs)
    print(
        f"{args.calls} calls × {len(costs) // args.calls} frames of 20 ms (espeak greeting + beep)"
    )
    print(
        f"per frame: p50 {statistics.median(ordered):.1f} µs, "
        f"p99 {ordered[int(0.99 * (len(ordered) - 1))]:.1f} µs, max {ordered[-1]:.1f} µs "
        "(time.perf_counter_ns, BeepDetector.feed + MachineDetection.tick)"
    )
    delays = [(at - beep_end) * 1000 for at in found if at is not None]
    print(
        f"beep end found in {len(delays)}/{args.calls} calls, "
        f"{statistics.median(delays):.0f} ms after the tone stopped"
        if delays
        else "beep not found"
    )


if __name__ == "__main__":
    main()
