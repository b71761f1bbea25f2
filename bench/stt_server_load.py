"""The live STT server's own CPU cost with many streams (so a load test can budget for it).

    .venv/bin/python bench/stt_server_load.py [--streams 100] [--seconds 20] [--recognizing]

Starts ``python -m bench.fakes.deepgram_live`` in its own process (scripted by default: the
instrument load tests use; ``--recognizing`` for Whisper), opens N ``/v1/listen`` streams
that each send a human phone prompt on repeat as 20 ms μ-law frames in real time, then prints
the server process's CPU (user + system) per wall second and the finals each stream got.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fakes.phone_speech import asterisk_prompt, silence  # noqa: E402
from voiceagent.emulator.audio import ulaw_encode  # noqa: E402

QUERY = (
    "model=nova-3&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true"
    "&endpointing=300&utterance_end_ms=1000&vad_events=true&smart_format=true"
)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stream(url: str, key: str, audio: bytes, seconds: float) -> int:
    """One caller: real-time μ-law, then CloseStream; returns the finals received."""
    finals = 0
    headers = {"Authorization": f"Token {key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}?{QUERY}", headers=headers) as ws,
    ):

        async def read() -> None:
            nonlocal finals
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("is_final"):
                    finals += 1

        reader = asyncio.create_task(read())
        began, sent = time.monotonic(), 0
        while time.monotonic() - began < seconds:
            offset = sent * 160 % len(audio)
            await ws.send_bytes(audio[offset : offset + 160])
            sent += 1
            await asyncio.sleep(max(0.0, began + sent * 0.02 - time.monotonic()))
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        await asyncio.wait_for(reader, 30)
    return finals


async def run(args: argparse.Namespace) -> None:
    speech, text = asterisk_prompt("privacy-unident")
    audio = ulaw_encode(silence(0.5) + speech + silence(1.0))
    key = "dg-load-key"
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as script:
        script.write("\n".join([text] * 50) + "\n")
    command = [sys.executable, "-m", "bench.fakes.deepgram_live", "--port", "0", "--api-key", key]
    if not args.recognizing:
        command += ["--scripted", script.name]
    server = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        url = (await asyncio.wait_for(server.stdout.readline(), 120)).decode().split()[-1]
        instrument = (await server.stdout.readline()).decode().strip()
        print(instrument)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        finals = await asyncio.gather(
            *(stream(url, key, audio, args.seconds) for _ in range(args.streams))
        )
        cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0)
        print(
            f"{args.streams} streams × {args.seconds:.0f} s of real-time μ-law: server process "
            f"{cpu:.0%} of one core; finals per stream {min(finals)}–{max(finals)}"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        await server.wait()
        os.unlink(script.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100, help="concurrent streams (100)")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per stream (20)")
    parser.add_argument("--recognizing", action="store_true", help="Whisper, not scripted")
    args = parser.parse_args()
    if args.streams < 1 or args.seconds <= 0:
        parser.error("--streams ≥ 1 and --seconds > 0")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
