"""Cloud-shaped providers on loopback, in their own process: an OpenAI-compatible SSE LLM and one
Deepgram-protocol host serving live transcription (``/v1/listen``) and speech (``/v1/speak``).

    python bench/fakes/providers.py --lines lines.json [--ready ready.json] [--stats stats.json]

Transcription is ``bench.fakes.deepgram_live`` with its ``ScriptedRecognizer`` (told each caller
line's text, revealed on the recognizing server's timing; NOT recognition: load and timing
only). ``lines.json``: ``[{"text": ..., "voiced_s": ...}, ...]`` (the caller lines of the load
script, in order). Once listening it writes ``{"llm": base_url, "deepgram": url, "pid": ...,
"instrument": ...}`` to ``--ready`` (and stdout); on SIGTERM/SIGINT it writes its counters to
``--stats`` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


from bench.fakes.deepgram_live import (  # noqa: E402
    DeepgramLiveServer,
    ScriptedRecognizer,
    ScriptLine,  # noqa: E402
)
from bench.fakes.deepgram_speak import DeepgramSpeak  # noqa: E402
from bench.fakes.openai_sse import FakeOpenAIServer  # noqa: E402

API_KEY = "bench-deepgram-key"


async def serve(args: argparse.Namespace) -> dict:
    """Run the providers until a signal; return their counters."""
    lines = [ScriptLine(**item) for item in json.loads(Path(args.lines).read_text())]
    speak = DeepgramSpeak(
        api_key=API_KEY,
        first_audio_s=args.tts_first_s,
        chunk_ms=100,
        speed=3.0,
        keep_syntheses=False,
    )
    listen = DeepgramLiveServer(
        ScriptedRecognizer(lines),
        api_key=API_KEY,
        interim_interval_s=args.partial_s,
        routes=speak.mount,
    )
    await listen.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fake_llm = FakeOpenAIServer(
        ttft_s=args.ttft_s, tokens_per_s=args.tokens_per_s, keep_requests=False
    )
    async with fake_llm as llm:
        ready = {
            "llm": llm.base_url,
            "deepgram": listen.url,
            "pid": os.getpid(),
            "instrument": listen.instrument,
        }
        if args.ready:
            tmp = Path(args.ready + ".tmp")
            tmp.write_text(json.dumps(ready))
            tmp.rename(args.ready)
        print(json.dumps(ready), flush=True)
        await stop.wait()
        llm_stats = {"requests": llm.served, "cancelled": llm.cancelled}
    await listen.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "listen": {"handshakes": listen.handshakes, "refused": len(listen.refused)},
        "speak": asdict(speak.stats),
        "llm": llm_stats,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main() -> int:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", required=True, help="JSON list of {text, voiced_s}")
    parser.add_argument("--ready", help="write the URLs here once listening")
    parser.add_argument("--stats", help="write the counters here at exit")
    parser.add_argument("--partial-s", type=float, default=0.1)
    parser.add_argument("--ttft-s", type=float, default=0.35)
    parser.add_argument("--tokens-per-s", type=float, default=30.0)
    parser.add_argument("--tts-first-s", type=float, default=0.15)
    args = parser.parse_args()
    stats = asyncio.run(serve(args))
    if args.stats:
        Path(args.stats).write_text(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
