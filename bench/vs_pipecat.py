"""voiceagent side by side with a stock pipecat 1.14 Twilio bot, on the same calls and providers.

    .venv/bin/python bench/vs_pipecat.py [--stt recognizing|scripted] [--category NAME]...
                                          [--scenario NAME]... [--out figures.json]

Both systems answer the same scenario calls (``evals/*.toml``, placed by voiceagent's Twilio
caller emulator: Piper-spoken lines and Asterisk recordings through 8 kHz μ-law, 20 ms media
messages in real time, mark echoes and ``clear`` as Twilio does them) and use the same loopback
providers:

- STT: the Deepgram-protocol live server ``bench/fakes/deepgram_live`` — recognizing with
  Whisper (default), or told the script (``--stt scripted``; timing only);
- LLM: ``bench/fakes/openai_sse.py``, an OpenAI-compatible SSE server (first token 350 ms,
  30 tokens/s, a reply built from the caller's words);
- TTS: ``bench/fakes/deepgram_tts.py``, Deepgram's ``/v1/speak`` (first audio 150 ms).

voiceagent runs its bundled receptionist (tools off) on Deepgram STT/TTS and the OpenAI LLM
with no fallbacks; pipecat runs ``bench/stock_pipecat_bot.py``. Everything is measured from
the caller's side only (the same for both; pipecat keeps no call record): end of speech →
first agent audio heard, a barge-in's onset → the ``clear`` reaching the caller, backchannels
that cut the agent and the silence they caused, keypad entries answered, replies started while
the caller was mid-sentence. Prints both systems' figures and the ratios (voiceagent / pipecat).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from loguru import logger  # noqa: E402

from bench.fakes.deepgram_tts import DeepgramTTSServer  # noqa: E402
from bench.fakes.openai_sse import FakeOpenAIServer  # noqa: E402
from bench.stock_pipecat_bot import Providers, serve_stock_bot  # noqa: E402
from voiceagent.eval.metrics import percentile  # noqa: E402
from voiceagent.eval.rates import sum_rates  # noqa: E402
from voiceagent.eval.report import ScenarioResult, SuiteReport  # noqa: E402
from voiceagent.eval.runner import (  # noqa: E402
    CallerVoice,
    EvalRunner,
    EvalTarget,
    one_caller_admission,
)
from voiceagent.eval.scenario import LineKind, Scenario, load_scenarios  # noqa: E402
from voiceagent.settings import Settings  # noqa: E402

DEFAULT_CATEGORIES = ("questions", "interrupters", "backchannels", "dtmf", "hesitant")
REACTION_S = 1.5
LLM_KEY, LLM_MODEL = "bench", "bench-model"


def voiceagent_settings(deepgram_url: str, deepgram_key: str, llm_url: str) -> Settings:
    """voiceagent on the loopback providers: Deepgram STT/TTS, the OpenAI LLM, no fallbacks.

    Its admission keeps ``max_calls`` but not the loop-lag limit (the loop is the bench's too;
    the stock bot has no admission): :func:`~voiceagent.eval.runner.one_caller_admission`.
    """
    settings = Settings(
        server={"host": "127.0.0.1", "port": 0, "twilio_auth_token": None},
        cloud={
            "deepgram_api_key": deepgram_key,
            "deepgram_url": deepgram_url,
            "openai_api_key": LLM_KEY,
            "openai_base_url": llm_url,
            "openai_model": LLM_MODEL,
        },
        stt="deepgram",
        llm="openai",
        tts="deepgram",
        fallback={"stt": [], "llm": [], "tts": []},
        agent={"tools": False},
        storage={"enabled": False},
    )
    return one_caller_admission(settings)


def _playing(heard: list, at: float):
    """The agent audio reaching the caller at ``at`` (a heard span), if any."""
    return next((s for s in heard if s.start_s <= at < s.end_s + 0.02), None)


def call_figures(result: ScenarioResult) -> dict[str, list[Any]]:
    """One call's caller-side facts: latencies, barge-ins, backchannels, keypad entries.

    A barge-in (or a key pressed) over the agent *stopped* it when the agent audio reaching
    the caller ended within ``REACTION_S`` of the line's end (timed from the line's onset); a
    backchannel *cut* the agent when a ``clear`` reached the caller during it (voiceagent's soft
    clear included), and the silence it caused runs from that clear to the next agent audio the
    caller heard (0 when not cut; to the call's end when none came).
    """
    timeline = result.timeline
    if timeline is None:
        return {"latency": [], "barge": [], "backchannel": [], "dtmf": []}
    heard = timeline.heard_spans()
    clears = [e.at_s for e in timeline.of("caller_clear")]
    spans = {s.turn_id: s for s in timeline.caller_lines()}
    out: dict[str, list[Any]] = {"latency": [], "barge": [], "backchannel": [], "dtmf": []}
    for line, seen in zip(result.scenario.lines, result.observation.lines, strict=True):
        span = spans.get(line.index)
        if span is None:
            continue
        playing = _playing(heard, span.start_s)
        stop_ms = None
        if playing is not None and playing.end_s <= span.end_s + REACTION_S:
            stop_ms = (playing.end_s - span.start_s) * 1000.0
        keypad = bool(line.dtmf) and not line.say and line.audio is None and not line.clips
        if keypad:
            out["dtmf"].append(
                {
                    "reply_ms": seen.latency_ms,
                    "over_agent": playing is not None,
                    "stopped": playing is not None and stop_ms is not None,
                }
            )
        elif line.kind is LineKind.TURN and seen.latency_ms is not None:
            out["latency"].append(seen.latency_ms)
        if line.kind is LineKind.BARGE_IN and not keypad and playing is not None:
            out["barge"].append(stop_ms)
        elif line.kind is LineKind.BACKCHANNEL and playing is not None:
            window = (span.start_s, span.end_s + REACTION_S)
            cut = next((t for t in clears if window[0] <= t <= window[1]), None)
            silent_ms = 0.0  # not cut: no silence
            if cut is not None:
                again = [s.start_s for s in heard if s.start_s > cut]
                silent_ms = ((min(again) if again else timeline.end_s()) - cut) * 1000.0
            out["backchannel"].append({"cut": cut is not None, "silent_ms": silent_ms})
    return out


def system_figures(report: SuiteReport) -> dict[str, Any]:
    """The figures of one system over all its calls."""
    facts: dict[str, list[Any]] = {"latency": [], "barge": [], "backchannel": [], "dtmf": []}
    for result in report.results:
        for key, values in call_figures(result).items():
            facts[key] += values
    lat = facts["latency"]
    stopped = [ms for ms in facts["barge"] if ms is not None]
    dtmf = facts["dtmf"]
    answered = [d["reply_ms"] for d in dtmf if d["reply_ms"] is not None]
    over = [d for d in dtmf if d["over_agent"]]
    rates = sum_rates(report.results)
    return {
        "calls": len(report.results),
        "latency_turns": len(lat),
        "latency_p50_ms": percentile(lat, 0.5) if lat else None,
        "latency_p90_ms": percentile(lat, 0.9) if lat else None,
        "barge_ins": len(facts["barge"]),
        "barge_ins_stopped": len(stopped),
        "barge_to_silent_p50_ms": statistics.median(stopped) if stopped else None,
        "backchannels": len(facts["backchannel"]),
        "backchannels_stopping_agent": sum(1 for b in facts["backchannel"] if b["cut"]),
        "backchannel_silence_p50_ms": (
            statistics.median(b["silent_ms"] for b in facts["backchannel"])
            if facts["backchannel"]
            else None
        ),
        "keypad_entries": len(dtmf),
        "keypad_answered": len(answered),
        "keypad_reply_p50_ms": statistics.median(answered) if answered else None,
        "keypad_over_agent": len(over),
        "keypad_stopped_agent": sum(1 for d in over if d["stopped"]),
        "premature_replies": rates["premature_reply"].count,
        "premature_of": rates["premature_reply"].of,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


_TIMES = (  # (figure, key): milliseconds, with the ratio voiceagent / pipecat
    ("latency p50 (end of speech → agent heard)", "latency_p50_ms"),
    ("latency p90", "latency_p90_ms"),
    ("barge-in onset → agent silent p50", "barge_to_silent_p50_ms"),
    ("agent silence a backchannel caused, p50", "backchannel_silence_p50_ms"),
    ("keypad entry → agent heard p50", "keypad_reply_p50_ms"),
)
_COUNTS = (  # (figure, count key, out-of key)
    ("barge-ins that stopped the agent", "barge_ins_stopped", "barge_ins"),
    ("backchannels that cut the agent's audio", "backchannels_stopping_agent", "backchannels"),
    ("keypad entries answered", "keypad_answered", "keypad_entries"),
    ("keypad over the agent stopped it", "keypad_stopped_agent", "keypad_over_agent"),
    ("replies started mid-sentence", "premature_replies", "premature_of"),
)


def print_table(va: dict[str, Any], pc: dict[str, Any], out=sys.stdout) -> None:
    """Both systems' figures and the ratios (voiceagent / pipecat)."""
    rows = [(name, _ms(va[k]), _ms(pc[k]), _ratio(va[k], pc[k])) for name, k in _TIMES]
    rows += [(name, f"{va[n]}/{va[of]}", f"{pc[n]}/{pc[of]}", "") for name, n, of in _COUNTS]
    out.write(f"\n{'figure':<44} {'voiceagent':>12} {'pipecat 1.14':>13} {'ratio':>6}\n")
    for name, a, b, r in rows:
        out.write(f"{name:<44} {a:>12} {b:>13} {r:>6}\n")


async def run_system(
    name: str, url: str, scenarios: list[Scenario], voice: CallerVoice, stt: Any
) -> SuiteReport:
    """Place every scenario's call on one system (caller-side judging only)."""
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{name} {time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    runner = EvalRunner(EvalTarget(url, bot=name), voice, tail_s=1.5, progress=progress)
    recognizer = getattr(stt, "recognizer", None)
    if hasattr(recognizer, "expect"):  # the scripted STT is told each call's lines in turn
        from bench.fakes.deepgram_live import ScriptLine
        from bench.fakes.deepgram_live.speech import SileroModel, voiced_seconds

        model = SileroModel()
        original = runner.run_call

        async def told(scenario, script, condition=None):
            recognizer.expect(
                ScriptLine(line.say, voiced_seconds(audio.pcm8k, model))
                for line, audio in zip(scenario.lines, script, strict=True)
                if line.say and audio.pcm8k
            )
            return await original(scenario, script, condition)

        runner.run_call = told  # type: ignore[method-assign]
    return await runner.run(scenarios)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stt", choices=("recognizing", "scripted"), default="recognizing")
    parser.add_argument("--category", action="append", default=[])
    parser.add_argument("--scenario", action="append", default=[])
    parser.add_argument("--out", default=None, help="write both systems' figures as JSON")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="INFO" if args.verbose else "WARNING")
    logger.enable("voiceagent")  # its warnings (a refused call, a provider error) are figures too

    from bench.fakes.deepgram_live import DeepgramLiveServer, ScriptedRecognizer, WhisperRecognizer

    categories = args.category or list(DEFAULT_CATEGORIES)
    scenarios = [
        s
        for s in load_scenarios([Path(__file__).resolve().parent.parent / "evals"])
        if (s.name in args.scenario) or (not args.scenario and s.category in categories)
    ]
    recognizer = ScriptedRecognizer() if args.stt == "scripted" else WhisperRecognizer()
    async with (
        DeepgramLiveServer(recognizer) as stt,
        FakeOpenAIServer(ttft_s=0.35, tokens_per_s=30.0) as llm,
        DeepgramTTSServer(listen_url=stt.url, listen_key=stt.api_key) as host,
    ):
        instruments = {
            "caller": "voiceagent caller emulator (Twilio Media Streams, 8 kHz mu-law, real time)",
            "stt": stt.instrument,
            "llm": "OpenAI-compatible SSE fake (bench/fakes/openai_sse.py): first token 350 ms, "
            "30 tokens/s",
            "tts": host.instrument,
        }
        voice = CallerVoice(Settings().local)
        settings = voiceagent_settings(host.url, host.api_key, llm.base_url)
        from voiceagent.pipelines.receptionist import ReceptionistBot, receptionist_settings
        from voiceagent.server.in_process import serve_in_process

        agent = receptionist_settings(settings).agent  # the stock bot says the same words
        bot = ReceptionistBot(settings)
        await bot.start()
        try:
            async with serve_in_process(settings, bot) as url:
                va = await run_system("voiceagent", url, scenarios, voice, stt)
        finally:
            await bot.stop()
        providers = Providers(
            deepgram_url=host.url,
            deepgram_key=host.api_key,
            llm_url=llm.base_url,
            llm_key=LLM_KEY,
            llm_model=LLM_MODEL,
            system_prompt=agent.system_prompt,
            greeting=agent.greeting,
        )
        async with serve_stock_bot(providers) as url:
            pc = await run_system("pipecat", url, scenarios, voice, stt)
    figures = {"voiceagent": system_figures(va), "pipecat": system_figures(pc)}
    when = time.strftime("%Y-%m-%d %H:%M")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(
        f"\n{len(scenarios)} scenario calls per system ({', '.join(categories)}), {when}, {machine}"
    )
    for role, instrument in instruments.items():
        print(f"  {role}: {instrument}")
    print_table(figures["voiceagent"], figures["pipecat"])
    if args.out:
        payload = {"when": when, "machine": machine, "instruments": instruments, **figures}
        Path(args.out).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
