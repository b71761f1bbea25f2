"""CPU per 20 ms frame of the caller-audio resampling: ours (sync) vs pipecat's (a coroutine).

    .venv/bin/python bench/resampler.py [--rounds 40] [--frames 2000]

Both wrap the same ``soxr.ResampleStream`` (8 kHz → 16 kHz, quality QQ, as the inbound
serializer uses). Ours: ``voiceagent.transports.twilio.codec.StreamResampler.resample``.
pipecat's: ``await SOXRStreamAudioResampler.resample`` inside a coroutine, as the serializer
would call it (``clear_after_secs=None``). The figure is the best, over interleaved rounds, of
``time.perf_counter`` per frame (one process, no other work): best-of filters out other
processes on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from pipecat.audio.resamplers.soxr_stream_resampler import SOXRStreamAudioResampler  # noqa: E402

from voiceagent.transports.twilio.codec import StreamResampler  # noqa: E402


async def measure(rounds: int, frames: int) -> dict[str, float]:
    pcm = (np.sin(np.arange(160) / 5) * 8000).astype("<i2").tobytes()  # 20 ms at 8 kHz
    ours = StreamResampler(8000, 16000, quality="QQ")
    theirs = SOXRStreamAudioResampler(quality="QQ", clear_after_secs=None)

    async def run_ours() -> None:
        for _ in range(frames):
            ours.resample(pcm)

    async def run_theirs() -> None:
        for _ in range(frames):
            await theirs.resample(pcm, 8000, 16000)

    best = {"StreamResampler": float("inf"), "SOXRStreamAudioResampler": float("inf")}
    for _ in range(rounds):
        for name, run in (("StreamResampler", run_ours), ("SOXRStreamAudioResampler", run_theirs)):
            t0 = time.perf_counter()
            await run()
            best[name] = min(best[name], (time.perf_counter() - t0) / frames)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    best = asyncio.run(measure(args.rounds, args.frames))
    print(
        f"instrument: bench/resampler.py, 8 kHz -> 16 kHz QQ, 20 ms frames, time.perf_counter, "
        f"best of {args.rounds} interleaved rounds of {args.frames} frames"
    )
    for name, seconds in best.items():
        print(f"{name:>26}: {seconds * 1e6:.2f} µs per frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
