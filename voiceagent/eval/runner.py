"""Places each scenario's call with the Twilio caller emulator and judges what happened.

The target is a Media Streams URL: the real server started in-process with the bundled
``ReceptionistBot`` (whose transcript callback tells what the agent committed as the caller's
words and what the caller heard of each agent turn), or a running server (``--url``), which
reports no transcript: then only what the caller observes (latency, clears) is judged.
Caller lines are synthesized with the offline Piper voice before any call is placed, so
synthesis never delays a call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from voiceagent.emulator.caller import CallerEmulator, CallReport
from voiceagent.emulator.script import CallerLine
from voiceagent.emulator.voice import caller_audio, load_caller_voice, synthesize_texts
from voiceagent.eval.checks import evaluate
from voiceagent.eval.observe import TranscriptEntry, observe_call
from voiceagent.eval.report import ScenarioResult, SuiteReport
from voiceagent.eval.scenario import LineKind, Scenario
from voiceagent.settings import LocalModelSettings, Settings

Progress = Callable[[str], None]
SETTLE_S = 0.3
"""After hang-up, time for the server's last transcript events to arrive."""


@dataclass
class _Said:
    call_sid: str
    who: str
    text: str
    info: dict[str, Any]
    at: float


@dataclass
class TranscriptBook:
    """A ``ReceptionistBot`` transcript callback that keeps every call's events with their time."""

    clock: Callable[[], float] = time.monotonic
    _said: list[_Said] = field(default_factory=list)

    def __call__(self, who: str, text: str, info: dict[str, Any]) -> None:
        """Record one committed caller turn or heard agent turn (the TranscriptTap callback)."""
        self._said.append(_Said(str(info.get("call_sid", "")), who, text, dict(info), self.clock()))

    def entries(self, call_sid: str, stream_origin: float) -> list[TranscriptEntry]:
        """Events of ``call_sid`` on its stream clock (``stream_origin``: clock time of t = 0)."""
        return [
            TranscriptEntry(
                who="revision" if said.info.get("revision") else said.who,
                text=said.text,
                at_s=said.at - stream_origin,
                interrupted=bool(said.info.get("interrupted", False)),
                full_text=str(said.info.get("full_text", "")),
            )
            for said in self._said
            if said.call_sid == call_sid
        ]


@dataclass
class EvalTarget:
    """Where calls go, and the server's transcript when it is in this process."""

    url: str
    transcript: TranscriptBook | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Extra upgrade headers (e.g. X-Twilio-Signature for a server that checks them)."""


class CallerVoice:
    """Turns scenario lines into the emulator's caller lines (Piper voice loaded on first need)."""

    def __init__(self, settings: LocalModelSettings, voice: Any = None) -> None:
        self._settings = settings
        self._voice = voice

    async def script(self, scenario: Scenario) -> list[CallerLine]:
        """Caller audio for every line: its WAV, or its words synthesized (cached on disk).

        Raises:
            ValueError: a WAV is unusable.
            voiceagent.services.local.weights.WeightsError: lines to synthesize but no voice.
        """
        to_say = [line.say for line in scenario.lines if line.audio is None]
        spoken: dict[str, bytes] = {}
        if to_say:
            self._voice = await load_caller_voice(self._settings, self._voice)
            folder = self._settings.cache_dir / "eval"
            paths = await asyncio.to_thread(synthesize_texts, self._voice, to_say, folder)
            for text, path in zip(to_say, paths, strict=True):
                spoken[text] = await asyncio.to_thread(caller_audio, path)
        lines = []
        for line in scenario.lines:
            try:
                pcm = (
                    spoken[line.say]
                    if line.audio is None
                    else await asyncio.to_thread(caller_audio, line.audio)
                )
            except (OSError, ValueError) as e:
                raise ValueError(
                    f"{scenario.source}: call {scenario.name!r} line {line.index + 1}: {e}"
                ) from e
            lines.append(
                CallerLine(
                    pcm8k=pcm,
                    pause_after_s=line.pause_after_s,
                    text=line.label,
                    dtmf=line.dtmf,
                    start_after_agent_audio_s=line.over_agent_after_s,
                    wait_for_reply=line.kind is not LineKind.CONTINUES,
                )
            )
        return lines


class EvalRunner:
    """Runs scenarios one call at a time against a target."""

    def __init__(
        self,
        target: EvalTarget,
        voice: CallerVoice,
        *,
        lead_in_s: float = 0.5,
        tail_s: float = 2.0,
        max_wait_reply_s: float = 15.0,
        progress: Progress | None = None,
    ) -> None:
        self.target = target
        self.voice = voice
        self.lead_in_s = lead_in_s
        self.tail_s = tail_s
        self.max_wait_reply_s = max_wait_reply_s
        self._progress = progress or (lambda msg: logger.info(msg))

    async def run(self, scenarios: list[Scenario]) -> SuiteReport:
        """Prepare every call's audio, place the calls in order, judge them.

        Raises:
            ValueError: a scenario's audio is unusable.
            voiceagent.services.local.weights.WeightsError: no Piper voice for ``say`` lines.
        """
        self._progress(f"preparing caller audio for {len(scenarios)} call(s)")
        scripts = [await self.voice.script(scenario) for scenario in scenarios]
        results = []
        for n, (scenario, script) in enumerate(zip(scenarios, scripts, strict=True), 1):
            self._progress(f"call {n}/{len(scenarios)}: {scenario.name}")
            result = await self.run_call(scenario, script)
            verdict = "all passed" if result.failed == 0 else f"{result.failed} failed"
            self._progress(f"  {len(result.checks)} check(s), {verdict}")
            results.append(result)
        return SuiteReport(results, self.target.url)

    async def run_call(self, scenario: Scenario, script: list[CallerLine]) -> ScenarioResult:
        """Place one call following ``script`` and judge ``scenario``'s checks on it."""
        events: list[tuple[float, str, dict]] = []

        def on_event(kind: str, data: dict) -> None:
            events.append((time.monotonic(), kind, dict(data)))
            if kind == "caller_line":
                self._progress(f"  caller: {data.get('text', '')}")
            elif kind == "clear":
                self._progress("  clear (the agent was cut off)")

        emulator = CallerEmulator(
            self.target.url,
            custom_parameters={"From": "+15550100", "To": "+15550199", "eval": scenario.name},
            headers=self.target.headers,
        )
        report: CallReport | None = None
        error = None
        try:
            async with asyncio.timeout(self._budget_s(script)):
                report = await emulator.run(
                    script,
                    lead_in_s=self.lead_in_s,
                    tail_s=self.tail_s,
                    max_wait_reply_s=self.max_wait_reply_s,
                    on_event=on_event,
                )
        except TimeoutError:
            error = f"the call did not finish within {self._budget_s(script):.0f} s"
        except RuntimeError as e:
            error = str(e)
        if error is not None:
            logger.warning(f"eval {scenario.name}: {error}")
        transcript = None
        if self.target.transcript is not None and report is not None:
            await asyncio.sleep(SETTLE_S)
            transcript = self.target.transcript.entries(emulator.call_sid, _stream_origin(events))
        clears = [(d["t"], d.get("discarded_s", 0.0)) for _, kind, d in events if kind == "clear"]
        observation = observe_call(scenario, report, transcript, clears, error=error)
        return ScenarioResult(scenario, observation, evaluate(scenario, observation))

    def _budget_s(self, script: list[CallerLine]) -> float:
        audio_s = sum(len(line.pcm8k) / 16000 for line in script)
        waits = sum(self.max_wait_reply_s + line.pause_after_s + 30.0 for line in script)
        return 30.0 + self.lead_in_s + audio_s + waits + self.tail_s


def _stream_origin(events: list[tuple[float, str, dict]]) -> float:
    """Clock time of stream t = 0: events are emitted as their stream time comes, never before."""
    stamped = [at - data["t"] for at, _, data in events if isinstance(data.get("t"), int | float)]
    return min(stamped) if stamped else time.monotonic()


@asynccontextmanager
async def bundled_bot(
    settings: Settings, progress: Progress | None = None
) -> AsyncIterator[tuple[EvalTarget, CallerVoice]]:
    """The bundled ``ReceptionistBot`` on an in-process loopback server, with its transcript.

    Raises:
        voiceagent.services.local.weights.WeightsError: offline weights are missing.
        RuntimeError, OSError: the stack or the server did not start.
    """
    from voiceagent.pipelines.receptionist import ReceptionistBot
    from voiceagent.server.in_process import serve_in_process

    book = TranscriptBook()
    bot = ReceptionistBot(settings, on_transcript=book)
    try:
        await bot.start(progress=progress)
        async with serve_in_process(settings, bot) as url:
            yield EvalTarget(url, book), CallerVoice(settings.local, bot.resources.piper_voice)
    finally:
        await bot.stop()
