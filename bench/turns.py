"""Turn-taking figures of the real pipeline with cloud-shaped, deterministic providers.

    /work/venv/bin/python bench/turns.py [--calls N] [--quick] [-v]

The real server (``run_server`` on 127.0.0.1) runs the real call pipeline
(``build_call_processors``: pipecat Silero VAD, barge-in gate, commit router, watchdog,
speculation hold, sentence aggregator, TwilioOutput) with only the providers swapped:
a Deepgram-shaped scripted STT (partials every 100 ms, final 150 ms after VAD stop), the
real ``VoiceLLMService`` on a fake OpenAI-compatible SSE server (TTFT 350 ms, 30 tokens/s)
and a streaming TTS (first audio 150 ms). The real Twilio caller emulator calls it over
loopback in real time, speaking Piper-synthesized lines through 8 kHz μ-law.

Prints caller end of speech → first agent audio (p50/p90) with a per-turn breakdown,
barge-in onset → ``clear`` (p50/p95), commit-and-regret rate, speculation counters and
false clears on backchannels. Goals (issue 4): p50 ≤ 250 ms, barge-in → clear p95 ≤ 120 ms,
regret ≤ 2 % of turns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from loguru import logger  # noqa: E402

from bench.fakes.breakdown import CallRecord, print_report  # noqa: E402
from bench.fakes.caller_lines import CALL_SCRIPTS, BenchLine, prepare_lines  # noqa: E402
from bench.fakes.cloud_stt import FakeCloudSTT  # noqa: E402
from bench.fakes.cloud_tts import FakeCloudTTS  # noqa: E402
from bench.fakes.dump import dump_records  # noqa: E402
from bench.fakes.openai_sse import FakeOpenAIServer  # noqa: E402
from bench.fakes.probe import Probe  # noqa: E402
from voiceagent.settings import AgentSettings, ServerSettings, Settings  # noqa: E402

PROBED_STAGES = ("stt", "barge_in", "router", "llm", "hold", "aggregator", "tts")
CALL_TIMEOUT_S = 150.0
GREETING = "Hi, thanks for calling Bright Smile Dental."


@dataclass
class Shape:
    """Latency shape of the fake providers."""

    partial_s: float = 0.1
    final_s: float = 0.15
    ttft_s: float = 0.35
    tokens_per_s: float = 30.0
    tts_first_s: float = 0.15
    tts_ms_per_char: float = 60.0


@dataclass
class _PendingCall:
    name: str
    lines: list[BenchLine]
    record: CallRecord


class TurnBench:
    """Runs scripted calls against the real server and collects what each side saw."""

    def __init__(self, settings: Settings, llm: FakeOpenAIServer, shape: Shape) -> None:
        from voiceagent.pipelines.resources import AgentResources

        self.settings = settings
        self.llm = llm
        self.shape = shape
        self.resources = AgentResources(settings)  # not started: every provider is a fake
        self._next: deque[_PendingCall] = deque()

    async def factory(self, call: Any, settings: Settings) -> list:
        """The server's pipeline factory: the real chain with the fake STT and TTS.

        The LLM stage is the default one: the real ``VoiceLLMService`` built from the cloud
        settings, whose ``openai_base_url`` is the fake server.
        """
        from voiceagent.pipelines.builder import build_call_processors

        if not self._next:
            raise RuntimeError("unexpected call: the bench places one call at a time")
        pending = self._next.popleft()
        record, shape = pending.record, self.shape
        stt = FakeCloudSTT(
            [(line.text, line.duration_s) for line in pending.lines],
            partial_interval_s=shape.partial_s,
            final_delay_s=shape.final_s,
        )
        tts = FakeCloudTTS(first_audio_s=shape.tts_first_s, ms_per_char=shape.tts_ms_per_char)
        extra = {stage: [Probe(stage, record.probes)] for stage in PROBED_STAGES}
        processors, parts = build_call_processors(
            settings,
            self.resources,
            overrides={"stt": lambda p: stt, "tts": lambda p: tts},
            extra=extra,
        )
        record.parts, record.stt, record.tts, record.transport = parts, stt, tts, call
        return processors

    async def run_call(self, url: str, name: str, lines: list[BenchLine]) -> CallRecord:
        """Place one scripted call and return everything observed."""
        from voiceagent.emulator.caller import CallerEmulator

        record = CallRecord(name=name, lines=lines)
        self._next.append(_PendingCall(name, lines, record))
        llm_before = len(self.llm.requests)

        def on_event(kind: str, data: dict) -> None:
            record.events.append((time.monotonic(), kind, dict(data)))

        async with asyncio.timeout(CALL_TIMEOUT_S):
            record.report = await CallerEmulator(
                url, custom_parameters={"From": "+15550100", "To": "+15550199", "bench": name}
            ).run(
                [line.caller_line() for line in lines],
                lead_in_s=0.5,
                tail_s=2.0,
                max_wait_reply_s=6.0,
                on_event=on_event,
            )
        record.llm_requests = self.llm.requests[llm_before:]
        return record


def bench_settings(llm_base_url: str, turns: dict[str, Any]) -> Settings:
    """Cloud-shaped settings: the LLM is "openai" at the fake server; keys are placeholders."""
    from voiceagent.settings import CloudSettings, FallbackSettings, TurnSettings

    return Settings(
        server=ServerSettings(host="127.0.0.1", port=0, shutdown_grace_s=0.0),
        cloud=CloudSettings(
            openai_base_url=llm_base_url, openai_api_key="bench-fake", openai_model="fake-cloud"
        ),
        agent=AgentSettings(greeting=GREETING),
        turns=TurnSettings(**turns),
        llm="openai",
        fallback=FallbackSettings(llm=[]),  # one provider per stage: the shape under test
    )


def parse_turns(items: list[str]) -> dict[str, Any]:
    """``router.max_speculations=6`` → ``{"router": {"max_speculations": 6}}`` (TurnSettings)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--turns {item!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        section, dot, name = key.partition(".")
        if dot:
            out.setdefault(section, {})[name] = value
        else:
            out[key] = value
    return out


async def run(args: argparse.Namespace) -> int:
    """Prepare audio, start the fakes and the server, place the calls, print the figures."""
    from voiceagent.server.app import run_server

    shape = Shape(ttft_s=args.ttft_ms / 1000.0, tokens_per_s=args.tokens_per_s)
    turns = parse_turns(args.turns)
    scripts = (
        CALL_SCRIPTS[:1]
        if args.quick
        else [CALL_SCRIPTS[i % len(CALL_SCRIPTS)] for i in range(args.calls)]
    )
    began = time.monotonic()
    print(f"preparing caller audio (Piper → 8 kHz μ-law) for {len(scripts)} call(s)", flush=True)
    prepared = await asyncio.to_thread(prepare_lines, Settings(), scripts)
    print(f"  ready in {time.monotonic() - began:.1f} s", flush=True)

    records: list[CallRecord] = []
    async with FakeOpenAIServer(ttft_s=shape.ttft_s, tokens_per_s=shape.tokens_per_s) as llm:
        settings = bench_settings(llm.base_url, turns)
        bench = TurnBench(settings, llm, shape)
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(
            run_server(settings, bench.factory, on_started=lambda p: port.set_result(p))
        )
        try:
            url = f"ws://127.0.0.1:{await asyncio.wait_for(port, 30)}/media"
            for n, (name, lines) in enumerate(prepared, 1):
                print(f"call {n}/{len(prepared)} ({name}, {len(lines)} caller lines)", flush=True)
                t = time.monotonic()
                records.append(await bench.run_call(url, name, lines))
                print(f"  done in {time.monotonic() - t:.1f} s", flush=True)
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)
    shape_text = _shape_text(shape) + (f"\nturn settings: {turns}" if turns else "")
    print_report(records, shape_text=shape_text)
    if args.dump:
        dump_records(records, Path(args.dump))
        print(f"timelines written to {args.dump}")
    print(f"\ntotal {time.monotonic() - began:.0f} s")
    return 0


def _shape_text(shape: Shape) -> str:
    return (
        f"providers: STT partial every {shape.partial_s * 1000:.0f} ms, final "
        f"{shape.final_s * 1000:.0f} ms after VAD stop; LLM TTFT {shape.ttft_s * 1000:.0f} ms, "
        f"{shape.tokens_per_s:.0f} tok/s; TTS first audio {shape.tts_first_s * 1000:.0f} ms, "
        f"{shape.tts_ms_per_char:.0f} ms/char"
    )


def main() -> int:
    """Parse arguments, configure logs, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3, help="scripted calls to place (3)")
    parser.add_argument("--quick", action="store_true", help="one call only")
    parser.add_argument("--ttft-ms", type=float, default=350.0, help="fake LLM TTFT (350)")
    parser.add_argument("--tokens-per-s", type=float, default=30.0, help="fake LLM rate (30)")
    parser.add_argument(
        "--turns",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TurnSettings override, e.g. router.max_speculations=6 or vad_stop_s=0.15",
    )
    parser.add_argument("--dump", metavar="JSON", help="write every call's timeline here")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    args = parser.parse_args()
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    try:
        parse_turns(args.turns)
    except ValueError as e:
        parser.error(str(e))
    logger.remove()
    level = "DEBUG" if args.verbose > 1 else "INFO" if args.verbose == 1 else "WARNING"
    logger.add(sys.stderr, level=level, format="{time:HH:mm:ss.SSS} {level: <7} {name}: {message}")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
