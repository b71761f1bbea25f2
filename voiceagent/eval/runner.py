"""Places each scenario's call with the Twilio caller emulator and judges what happened.

The target is a Media Streams URL: the real server started in this process with any bot
(``voiceagent.eval.bots``), or a running server (``--url``). Either way the server records
every call; the eval reads that record (:class:`~voiceagent.eval.records.CallRecords`) by the
call's sid to learn what the agent committed as the caller's words and what the caller heard
of each agent turn, adds the caller's own view to the call's timeline, and judges. A remote
server whose store is not readable here is judged only on what the caller observes.

Each call is placed under a phone-line condition (the scenario's own, with the run's laid
over it). Caller lines are synthesized before any call is placed, so synthesis never delays
a call.
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
from voiceagent.emulator.conditions import LineCondition
from voiceagent.emulator.recordings import joined_clips
from voiceagent.emulator.script import CallerLine
from voiceagent.emulator.voice import (
    caller_audio,
    espeak_texts,
    load_caller_voice,
    synthesize_texts,
)
from voiceagent.eval.checks import evaluate
from voiceagent.eval.observe import caller_side, observe_call, transcript_entries
from voiceagent.eval.records import CallRecords
from voiceagent.eval.report import ScenarioResult, SuiteReport
from voiceagent.eval.scenario import LineKind, Scenario
from voiceagent.settings import LocalModelSettings, Settings
from voiceagent.timeline.model import CallTimeline

Progress = Callable[[str], None]
GREETING_WAIT_S = 4.0
"""Before the first line the caller waits this long for a greeting to start (then lets it
finish), so a first line is never spoken over a slow greeting nor taken as its answer."""


@dataclass
class EvalTarget:
    """Where calls go, and where the server's record of each call can be read."""

    url: str
    records: CallRecords | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Extra upgrade headers (e.g. X-Twilio-Signature for a server that checks them)."""
    record_wait_s: float = 10.0
    """How long to wait after a call for the server to complete its record."""
    bot: str = "voiceagent.pipelines.receptionist:ReceptionistBot"


class CallerVoice:
    """Turns scenario lines into the emulator's caller lines (Piper loaded on first need)."""

    def __init__(self, settings: LocalModelSettings, voice: Any = None) -> None:
        self._settings = settings
        self._voice = voice

    async def _spoken(self, texts: list[str], who: str | None) -> dict[str, bytes]:
        if not texts:
            return {}
        folder = self._settings.cache_dir / "eval"
        kind, _, detail = (who or "piper").partition(":")
        if kind == "espeak":
            paths = await asyncio.to_thread(espeak_texts, detail or "en-us", texts, folder)
        else:
            self._voice = await load_caller_voice(self._settings, self._voice)
            scale = float(detail) if detail else None
            paths = await asyncio.to_thread(
                lambda: synthesize_texts(self._voice, texts, folder, length_scale=scale)
            )
        return {
            text: await asyncio.to_thread(caller_audio, path)
            for text, path in zip(texts, paths, strict=True)
        }

    async def script(self, scenario: Scenario, who: str | None = None) -> list[CallerLine]:
        """Caller audio for every line: its WAV, its recordings, or its words spoken by ``who``.

        Raises:
            ValueError: a WAV or recording is unusable, or the voice cannot speak.
            voiceagent.services.local.weights.WeightsError: lines to synthesize but no Piper.
        """
        spoken = await self._spoken([ln.say for ln in scenario.lines if ln.synthesized], who)
        lines = []
        for line in scenario.lines:
            try:
                if line.audio is not None:
                    pcm = await asyncio.to_thread(caller_audio, line.audio)
                elif line.clips:
                    pcm = await asyncio.to_thread(joined_clips, list(line.clips))
                else:
                    pcm = spoken.get(line.say, b"")
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


def plan_calls(
    scenarios: list[Scenario], conditions: list[LineCondition] | None
) -> list[tuple[Scenario, LineCondition | None]]:
    """Every scenario under every run condition (its own condition when the run names none)."""
    runs = conditions or [None]
    out = []
    for run in runs:
        for scenario in scenarios:
            own = scenario.condition
            out.append((scenario, own if run is None else run.over(own)))
    return out


class EvalRunner:
    """Runs scenarios one call at a time against a target."""

    def __init__(
        self,
        target: EvalTarget,
        voice: CallerVoice,
        *,
        conditions: list[LineCondition] | None = None,
        lead_in_s: float = 0.5,
        greeting_wait_s: float = GREETING_WAIT_S,
        tail_s: float = 2.0,
        max_wait_reply_s: float = 15.0,
        progress: Progress | None = None,
    ) -> None:
        self.target = target
        self.voice = voice
        self.conditions = conditions
        self.lead_in_s = lead_in_s
        self.greeting_wait_s = greeting_wait_s
        self.tail_s = tail_s
        self.max_wait_reply_s = max_wait_reply_s
        self._progress = progress or (lambda msg: logger.info(msg))

    async def run(self, scenarios: list[Scenario]) -> SuiteReport:
        """Prepare every call's audio, place the calls in order, judge them.

        Raises:
            ValueError: a scenario's audio is unusable.
            voiceagent.services.local.weights.WeightsError: no Piper voice for ``say`` lines.
        """
        plans = plan_calls(scenarios, self.conditions)
        self._progress(f"preparing caller audio for {len(plans)} call(s)")
        scripts: dict[tuple[str, str | None], list[CallerLine]] = {}
        for scenario, condition in plans:
            who = condition.voice if condition is not None else None
            key = (scenario.name, who)
            if key not in scripts:
                scripts[key] = await self.voice.script(scenario, who)
        results = []
        started = time.time()
        for n, (scenario, condition) in enumerate(plans, 1):
            where = f" [{condition.name}]" if condition is not None else ""
            self._progress(f"call {n}/{len(plans)}: {scenario.name}{where}")
            who = condition.voice if condition is not None else None
            result = await self.run_call(scenario, scripts[(scenario.name, who)], condition)
            verdict = "all passed" if result.failed == 0 else f"{result.failed} failed"
            if result.observation.close:
                verdict += f" (the server closed the call: {result.observation.close})"
            self._progress(
                f"  {result.observation.call_sid}: {len(result.checks)} check(s), {verdict}"
            )
            results.append(result)
        return SuiteReport(
            results, self.target.url, bot=self.target.bot, started_at=started, ended_at=time.time()
        )

    async def run_call(
        self, scenario: Scenario, script: list[CallerLine], condition: LineCondition | None = None
    ) -> ScenarioResult:
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
                    greeting_wait_s=self.greeting_wait_s,
                    condition=condition,
                )
        except TimeoutError:
            error = f"the call did not finish within {self._budget_s(script):.0f} s"
        except RuntimeError as e:
            error = str(e)
        if error is not None:
            logger.warning(f"eval {scenario.name}: {error}")
        timeline = None
        records = self.target.records
        if records is not None and report is not None:
            timeline = await records.timeline(emulator.call_sid, wait_s=self.target.record_wait_s)
        transcript = transcript_entries(timeline) if timeline is not None else None
        mine = caller_side(scenario, events)
        if timeline is None:
            timeline = CallTimeline(emulator.call_sid)
        elif records is not None:
            await records.add(timeline, mine)
        timeline.add(mine)
        clears = [(d["t"], d.get("discarded_s", 0.0)) for _, kind, d in events if kind == "clear"]
        observation = observe_call(scenario, report, transcript, clears, error=error)
        return ScenarioResult(
            scenario,
            observation,
            evaluate(scenario, observation),
            condition=condition,
            timeline=timeline,
            heard_pcm8k=report.heard_pcm8k if report is not None else b"",
            media_lost=report.media_lost if report is not None else 0,
        )

    def _budget_s(self, script: list[CallerLine]) -> float:
        audio_s = sum(len(line.pcm8k) / 16000 for line in script)
        waits = sum(self.max_wait_reply_s + line.pause_after_s + 30.0 for line in script)
        return 30.0 + self.lead_in_s + self.greeting_wait_s + audio_s + waits + self.tail_s


IN_PROCESS_MAX_LOOP_LAG_MS = 60_000.0
"""The in-process server's loop-lag admission limit unless configured (see below)."""


def one_caller_admission(settings: Settings) -> Settings:
    """``settings`` for an in-process server that the eval's one caller at a time talks to.

    The server shares its event loop with the caller emulator (and, in benches, with the fake
    providers), so the loop lag its admission reads is the harness's own work as much as the
    server's: a caller refused as "slow" (close 1013) would measure the harness. The lag limit
    is lifted unless ``server.max_loop_lag_ms`` was set explicitly; ``max_calls`` stays.
    """
    if "max_loop_lag_ms" in settings.server.model_fields_set:
        return settings
    server = settings.server.model_copy(update={"max_loop_lag_ms": IN_PROCESS_MAX_LOOP_LAG_MS})
    return settings.model_copy(update={"server": server})


@asynccontextmanager
async def serve_bot(
    settings: Settings, bot_spec: str | None = None, progress: Progress | None = None
) -> AsyncIterator[tuple[EvalTarget, CallerVoice]]:
    """A bot (the bundled receptionist by default) on an in-process loopback server.

    The server records every call; without storage configured the eval records into a
    temporary folder.

    Raises:
        voiceagent.eval.bots.BotSpecError: ``bot_spec`` names nothing usable.
        voiceagent.services.local.weights.WeightsError: offline weights are missing.
        RuntimeError, OSError: the stack or the server did not start.
    """
    import tempfile

    from voiceagent.eval.bots import caller_voice_of, load_bot, start_bot, stop_bot
    from voiceagent.server.in_process import serve_in_process

    with tempfile.TemporaryDirectory(prefix="voiceagent-eval-") as scratch:
        settings = one_caller_admission(settings)
        if not settings.storage.enabled:
            storage = settings.storage.model_copy(update={"enabled": True, "dir": scratch})
            settings = settings.model_copy(update={"storage": storage})
            logger.info(f"eval: storage is off in the settings; recording into {scratch}")
        bot = load_bot(bot_spec, settings)
        try:
            await start_bot(bot, progress)
            async with serve_in_process(settings, bot) as url:
                target = EvalTarget(
                    url,
                    CallRecords(settings.storage),
                    bot=bot_spec or EvalTarget.bot,
                )
                yield target, CallerVoice(settings.local, caller_voice_of(bot))
        finally:
            await stop_bot(bot)


bundled_bot = serve_bot
"""The bundled receptionist in process (``serve_bot`` with no bot named)."""
