"""Run the Deepgram live server standalone: ``python -m bench.fakes.deepgram_live --help``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from loguru import logger  # noqa: E402

from bench.fakes.deepgram_live import (  # noqa: E402
    DEFAULT_API_KEY,
    DeepgramLiveServer,
    ScriptedRecognizer,
    WhisperRecognizer,
    load_script,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fakes.deepgram_live",
        description="Deepgram-protocol live STT server on loopback: real Whisper recognition, "
        "or --scripted (told the script; NOT recognition, for load tests).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks one (printed)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("DEEPGRAM_API_KEY", DEFAULT_API_KEY),
        help=f"key clients send as 'Token <key>' ($DEEPGRAM_API_KEY or {DEFAULT_API_KEY})",
    )
    parser.add_argument("--scripted", metavar="FILE", help="scripted instrument on this script")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="extra recognition latency (0)")
    parser.add_argument("--interim-ms", type=float, default=100.0, help="interim cadence (100)")
    parser.add_argument(
        "--scripted-decode-ms", type=float, default=200.0, help="scripted 'decode' time (200)"
    )
    parser.add_argument("--idle-timeout-s", type=float, default=10.0, help="idle close (10)")
    parser.add_argument("--workers", type=int, default=1, help="Whisper decodes at once (1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    args = parser.parse_args(argv)
    if args.delay_ms < 0 or args.scripted_decode_ms < 0:
        parser.error("--delay-ms and --scripted-decode-ms must be ≥ 0")
    if args.interim_ms <= 0 or args.idle_timeout_s <= 0:
        parser.error("--interim-ms and --idle-timeout-s must be > 0")
    return args


async def serve(args: argparse.Namespace) -> None:
    if args.scripted:
        recognizer = ScriptedRecognizer(
            load_script(args.scripted), decode_s=args.scripted_decode_ms / 1000.0
        )
    else:
        recognizer = WhisperRecognizer(workers=args.workers)
    server = DeepgramLiveServer(
        recognizer,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        recognition_delay_s=args.delay_ms / 1000.0,
        interim_interval_s=args.interim_ms / 1000.0,
        idle_timeout_s=args.idle_timeout_s,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"listening on {server.url}/v1/listen", flush=True)
        print(f"instrument: {server.instrument}", flush=True)
        await stop.wait()
        print(f"stopping after {server.handshakes} handshake(s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if args.verbose else "INFO")
    try:
        asyncio.run(serve(args))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
