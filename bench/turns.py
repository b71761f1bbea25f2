"""Turn-taking figures of the real pipeline on a realistic streaming STT, from the caller's side.

    .venv/bin/python bench/turns.py [--stt recognizing|scripted] [--stt-delay-ms MS]
                                    [--calls N] [--quick] [--dump FILE] [-v]

The real server (``run_server`` on 127.0.0.1) runs the real call pipeline
(``build_call_processors``) with only the providers pointed at local stand-ins; the real
Twilio caller emulator calls it over loopback in real time.

STT, by ``--stt`` (the report header names it; every figure is made with it):

- ``recognizing`` (default): voiceagent's own Deepgram STT (pipecat's ``DeepgramSTTService``,
  built from settings: ``stt="deepgram"``, ``cloud.deepgram_url``) against
  ``bench/fakes/deepgram_live``, a Deepgram-protocol server whose transcripts come from real
  recognition (Whisper tiny.en on the phone audio): interims lag the audio, finals carry
  words the last interim lacked, long speech is split into several finals, words are
  misheard. ``--stt-delay-ms`` adds latency to every result (a slow STT).
- ``scripted``: ``bench/fakes/cloud_stt.FakeCloudSTT``, TOLD THE SCRIPT: it reveals each
  line's exact words on a timer. An oracle for comparison, not recognition.

LLM: the real ``VoiceLLMService`` on a fake OpenAI-compatible SSE server (TTFT 350 ms, 30
tokens/s). TTS: a fake streaming TTS (first audio 150 ms). Callers speak Piper and espeak-ng
voices and human phone recordings (Asterisk prompts) through 8 kHz μ-law, pause mid-sentence,
dictate digits, backchannel and barge in over the agent, answer in one word and press keys.

Prints, per caller line, the agent replies that started before the caller's next line (two
or more: a double answer), replies started while the caller was mid-utterance, end of speech
→ first agent audio p50/p90 with the provider floor measured in the same run (STT final, LLM
first token, TTS first audio), barge-in onset → the first ``clear`` of any kind (the soft clear
at the caller's first sound, or the barge-in's), → the barge-in ``clear`` (the reply cut off)
and → the agent's audio stopping at the caller, backchannel interruptions (barge-in clears
only; soft clears counted apart: the caller sees both as ``clear``, the server's call record
tells them apart), last key → first agent audio, and commits and regrets from the pipeline's
own frames.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
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

PROBED_STAGES = ("voice", "stt", "turns", "llm", "aggregator", "tts")
CALL_TIMEOUT_S = 180.0
GREETING = "Hi, thanks for calling Bright Smile Dental."
SCRIPTED_STT = (
    "SCRIPTED oracle STT (bench/fakes/cloud_stt.FakeCloudSTT): TOLD THE SCRIPT, reveals each "
    "line's exact words on a timer; NOT recognition"
)


@dataclass
class Shape:
    """Latency shape of the fake providers."""

    partial_s: float = 0.1
    final_s: float = 0.15
    ttft_s: float = 0.35
    tokens_per_s: float = 30.0
    tts_first_s: float = 0.15
    tts_ms_per_char: float = 60.0


class TurnBench:
    """Runs scripted calls against the real server and collects what each side saw."""

    def __init__(
        self, settings: Settings, llm: FakeOpenAIServer, shape: Shape, stt_server: Any
    ) -> None:
        from voiceagent.pipelines.resources import AgentResources

        self.settings = settings
        self.llm = llm
        self.shape = shape
        self.stt_server = stt_server  # None: the scripted oracle
        self.resources = AgentResources(settings)  # not started: no local model is used
        self._next: deque[CallRecord] = deque()

    async def factory(self, call: Any, settings: Settings) -> list:
        """The server's pipeline factory: the real chain, the fake TTS (and scripted STT)."""
        from voiceagent.pipelines.builder import STAGES, build_call_processors

        if not self._next:
            raise RuntimeError("unexpected call: the bench places one call at a time")
        record, shape = self._next.popleft(), self.shape
        tts = FakeCloudTTS(first_audio_s=shape.tts_first_s, ms_per_char=shape.tts_ms_per_char)
        overrides: dict[str, Any] = {"tts": lambda p: tts}
        if self.stt_server is None:
            stt = FakeCloudSTT(
                [(line.text, line.duration_s) for line in record.lines if line.pcm8k],
                partial_interval_s=shape.partial_s,
                final_delay_s=shape.final_s,
            )
            overrides["stt"] = lambda p: stt
        extra = {s: [Probe(s, record.probes)] for s in PROBED_STAGES if s in STAGES}
        processors, parts = build_call_processors(
            settings, self.resources, overrides=overrides, extra=extra
        )
        record.parts, record.tts, record.transport = parts, tts, call
        return processors

    async def run_call(self, url: str, name: str, lines: list[BenchLine]) -> CallRecord:
        """Place one scripted call and return everything observed."""
        from voiceagent.emulator.caller import CallerEmulator

        record = CallRecord(name=name, lines=lines)
        self._next.append(record)
        llm_before = len(self.llm.requests)
        began = time.monotonic()

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
        if self.stt_server is not None:
            record.stt_connections = [
                c for c in self.stt_server.connections if c.opened_at >= began
            ]
        return record


def bench_settings(
    llm_base_url: str, turns: dict[str, Any], stt_server: Any, storage_dir: Path
) -> Settings:
    """Cloud-shaped settings: the fake LLM as "openai", the STT as "deepgram" at the server.

    Calls are recorded as in production, into ``storage_dir`` (not the user's call store).
    """
    from voiceagent.settings import CloudSettings, FallbackSettings, StorageSettings
    from voiceagent.turns.options import TurnTaking

    cloud: dict[str, Any] = {
        "openai_base_url": llm_base_url,
        "openai_api_key": "bench-fake",
        "openai_model": "fake-cloud",
    }
    if stt_server is not None:
        cloud.update(deepgram_api_key=stt_server.api_key, deepgram_url=stt_server.url)
    return Settings(
        server=ServerSettings(host="127.0.0.1", port=0, shutdown_grace_s=0.0),
        cloud=CloudSettings(**cloud),
        agent=AgentSettings(greeting=GREETING),
        turns=TurnTaking.model_validate(turns),
        storage=StorageSettings(dir=storage_dir),
        llm="openai",
        stt="deepgram" if stt_server is not None else "auto",
        fallback=FallbackSettings(llm=[], stt=[], tts=[]),  # one provider per stage
    )


def parse_turns(items: list[str]) -> dict[str, Any]:
    """``endpointing.min_silence_s=0.3`` → ``{"endpointing": {"min_silence_s": 0.3}}``."""
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


async def start_stt(args: argparse.Namespace) -> Any:
    """The recognizing Deepgram-protocol server (Whisper loaded and warmed), or None."""
    if args.stt != "recognizing":
        return None
    from bench.fakes.deepgram_live import DeepgramLiveServer, WhisperRecognizer

    server = DeepgramLiveServer(
        WhisperRecognizer(Settings().local), recognition_delay_s=args.stt_delay_ms / 1000.0
    )
    await server.start()
    return server


async def run(args: argparse.Namespace) -> int:
    """Prepare audio, start the fakes and the server, place the calls, print the figures."""
    from voiceagent.server.app import run_server

    shape = Shape(ttft_s=args.ttft_ms / 1000.0, tokens_per_s=args.tokens_per_s)
    turns = parse_turns(args.turns)
    scripts = (
        CALL_SCRIPTS[:1]
        if args.quick
        else [CALL_SCRIPTS[i % len(CALL_SCRIPTS)] for i in range(args.calls or len(CALL_SCRIPTS))]
    )
    began = time.monotonic()
    print(f"preparing caller audio for {len(scripts)} call(s)", flush=True)
    prepared = await asyncio.to_thread(prepare_lines, Settings(), scripts)
    print(f"  ready in {time.monotonic() - began:.1f} s", flush=True)
    stt_server = await start_stt(args)
    instrument = stt_server.instrument if stt_server is not None else SCRIPTED_STT
    print(f"STT: {instrument}", flush=True)

    records: list[CallRecord] = []
    storage = tempfile.TemporaryDirectory(prefix="bench-turns-")
    try:
        async with FakeOpenAIServer(ttft_s=shape.ttft_s, tokens_per_s=shape.tokens_per_s) as llm:
            settings = bench_settings(llm.base_url, turns, stt_server, Path(storage.name))
            bench = TurnBench(settings, llm, shape, stt_server)
            port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            server = asyncio.create_task(
                run_server(settings, bench.factory, on_started=lambda p: port.set_result(p))
            )
            try:
                url = f"ws://127.0.0.1:{await asyncio.wait_for(port, 30)}/media"
                for n, (name, lines) in enumerate(prepared, 1):
                    print(
                        f"call {n}/{len(prepared)} ({name}, {len(lines)} caller lines)", flush=True
                    )
                    t = time.monotonic()
                    records.append(await bench.run_call(url, name, lines))
                    print(f"  done in {time.monotonic() - t:.1f} s", flush=True)
            finally:
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)
        await asyncio.to_thread(read_server_clears, records, settings)
    finally:
        if stt_server is not None:
            await stt_server.stop()
        storage.cleanup()
    header = f"STT: {instrument}\n{_shape_text(shape)}" + (
        f"\nturn settings: {turns}" if turns else ""
    )
    print_report(records, header=header)
    _print_stt_server(records)
    if args.dump:
        dump_records(records, Path(args.dump))
        print(f"timelines written to {args.dump}")
    print(f"\ntotal {time.monotonic() - began:.0f} s")
    return 0


def read_server_clears(records: list[CallRecord], settings: Settings) -> None:
    """Each call's clears from the server's call record: ``pause_clear`` (soft) or ``clear``.

    The caller sees both as Twilio ``clear`` messages; the bench tells them apart by this
    record (``bench.fakes.breakdown``).
    """
    from voiceagent.storage import open_store

    store = open_store(settings.storage, create=False)
    try:
        for rec in records:
            detail = store.find_call(rec.report.call_sid) if rec.report is not None else None
            if detail is not None:
                kinds = ("clear", "pause_clear")
                rec.server_clears = [e.kind for e in detail.events if e.kind in kinds]
    finally:
        store.close()


def _print_stt_server(records: list[CallRecord]) -> None:
    connections = [c for rec in records for c in rec.stt_connections]
    if not connections:
        return
    decodes = [d for c in connections for d in c.decode_s]
    finals = sum(1 for c in connections for m in c.of("Results") if m.body["is_final"])
    interims = sum(1 for c in connections for m in c.of("Results") if not m.body["is_final"])
    median = statistics.median(decodes) * 1000 if decodes else 0.0
    print(
        f"\nSTT server: {len(connections)} stream(s), {len(decodes)} decodes (median "
        f"{median:.0f} ms), {interims} interims, {finals} finals, "
        f"{sum(c.interims_skipped for c in connections)} interim ticks skipped (decode busy)"
    )


def _shape_text(shape: Shape) -> str:
    return (
        f"LLM: fake OpenAI-compatible SSE, TTFT {shape.ttft_s * 1000:.0f} ms, "
        f"{shape.tokens_per_s:.0f} tok/s; TTS: fake streaming, first audio "
        f"{shape.tts_first_s * 1000:.0f} ms, {shape.tts_ms_per_char:.0f} ms/char"
    )


def main() -> int:
    """Parse arguments, configure logs, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stt",
        choices=("recognizing", "scripted"),
        default="recognizing",
        help="recognizing: Deepgram client → Whisper-backed Deepgram-protocol server (default); "
        "scripted: the told-the-script oracle",
    )
    parser.add_argument(
        "--stt-delay-ms", type=float, default=0.0, help="extra STT result latency (0)"
    )
    parser.add_argument("--calls", type=int, default=0, help="calls to place (each script once)")
    parser.add_argument("--quick", action="store_true", help="one call only")
    parser.add_argument("--ttft-ms", type=float, default=350.0, help="fake LLM TTFT (350)")
    parser.add_argument("--tokens-per-s", type=float, default=30.0, help="fake LLM rate (30)")
    parser.add_argument(
        "--turns",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TurnTaking override, e.g. endpointing.min_silence_s=0.3 or voice.stop_s=0.15",
    )
    parser.add_argument("--dump", metavar="JSON", help="write every call's timeline here")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    args = parser.parse_args()
    if args.calls < 0 or args.stt_delay_ms < 0:
        parser.error("--calls and --stt-delay-ms must be ≥ 0")
    if args.stt == "scripted" and args.stt_delay_ms:
        parser.error("--stt-delay-ms applies to the recognizing STT only")
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
