"""The eval's verdict: evidence per check, latency by stage, turn-taking rates, STT WER, pass rate.

Printed as text (a failed check names its call sid and shows the call's compact timeline),
written as JSON (every call's timeline included, so a later run can be compared with it) and
drawn as HTML (``voiceagent.eval.html``). Figures are given for the whole run and for each
phone-line condition.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from voiceagent.emulator.conditions import LineCondition
from voiceagent.eval.checks import CheckResult, sentence_lines
from voiceagent.eval.metrics import LatencySummary, WordErrors, corpus_wer
from voiceagent.eval.observe import CallObservation, LineObservation
from voiceagent.eval.rates import RATES, Rate, sum_rates
from voiceagent.eval.scenario import Scenario
from voiceagent.timeline.latency import STAGES, TurnLatency, turn_latencies
from voiceagent.timeline.model import CallTimeline
from voiceagent.timeline.text import print_timeline

_MARK = {True: "PASS", False: "FAIL", None: "n/a "}
_MATCH_S = 0.06  # a turn's "heard" milestone and the caller's first agent audio: the same moment


@dataclass
class ScenarioResult:
    """One scenario call: what was observed and how its checks came out."""

    scenario: Scenario
    observation: CallObservation
    checks: list[CheckResult]
    condition: LineCondition | None = None
    timeline: CallTimeline | None = None
    heard_pcm8k: bytes = b""
    """What the caller heard (8 kHz PCM16), for the HTML report."""
    media_lost: int = 0

    @property
    def failed(self) -> int:
        """Checks that failed."""
        return sum(1 for c in self.checks if c.passed is False)

    @property
    def condition_name(self) -> str:
        """The phone-line condition's name (``clean`` when none)."""
        return self.condition.name if self.condition is not None else "clean"

    def latencies_ms(self) -> list[float]:
        """Reply latency of every line that ended a caller turn and got a reply."""
        return [
            seen.latency_ms
            for line, seen in zip(self.scenario.lines, self.observation.lines, strict=True)
            if line.kind.ends_turn and seen.latency_ms is not None
        ]

    def turn_latencies(self) -> list[TurnLatency]:
        """The server's per-turn latency split (turns with a reply)."""
        if self.timeline is None:
            return []
        return [t for t in turn_latencies(self.timeline) if t.total_ms is not None]

    def line_latency(self, seen: LineObservation) -> TurnLatency | None:
        """The turn whose reply was the first agent audio after this line, split by stage."""
        if seen.first_agent_audio_s is None:
            return None
        for turn in self.turn_latencies():
            heard = turn.marks.get("heard")
            if heard is not None and abs(heard - seen.first_agent_audio_s) <= _MATCH_S:
                return turn
        return None

    def transcript_pairs(self) -> list[tuple[str, str]]:
        """``(said, committed)`` of every caller sentence with known words (needs a transcript)."""
        if not self.observation.transcript:
            return []
        pairs = []
        lines, seen = self.scenario.lines, self.observation.lines
        for line in lines:
            group = sentence_lines(self.scenario, line.index)
            if not line.kind.ends_turn or not all(lines[i].say and seen[i].spoken for i in group):
                continue
            said = " ".join(lines[i].say for i in group)
            understood = " ".join(text for i in group for text in seen[i].understood)
            pairs.append((said, understood))
        return pairs


@dataclass
class Figures:
    """Aggregates over some scenario results."""

    calls: int
    passed: int
    failed: int
    not_evaluated: int
    latency: LatencySummary | None
    wer: WordErrors | None
    rates: dict[str, Rate] = field(default_factory=dict)
    stages_p50_ms: dict[str, float | None] = field(default_factory=dict)
    split_turns: int = 0

    @classmethod
    def of(cls, results: list[ScenarioResult]) -> Figures:
        """Figures over ``results``."""
        checks = [c for r in results for c in r.checks]
        pairs = [pair for r in results for pair in r.transcript_pairs()]
        turns = [t for r in results for t in r.turn_latencies()]
        stages: dict[str, float | None] = {}
        for key, _ in STAGES:
            values = [v for t in turns if (v := t.stages_ms().get(key)) is not None]
            stages[key] = statistics.median(values) if values else None
        return cls(
            calls=len(results),
            passed=sum(1 for c in checks if c.passed is True),
            failed=sum(1 for c in checks if c.passed is False),
            not_evaluated=sum(1 for c in checks if c.passed is None),
            latency=LatencySummary.of([ms for r in results for ms in r.latencies_ms()]),
            wer=corpus_wer(pairs) if pairs else None,
            rates=sum_rates(results),
            stages_p50_ms=stages,
            split_turns=len(turns),
        )

    @property
    def pass_rate(self) -> float | None:
        """Passed share of the evaluated checks."""
        judged = self.passed + self.failed
        return self.passed / judged if judged else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "calls": self.calls,
            "passed": self.passed,
            "failed": self.failed,
            "not_evaluated": self.not_evaluated,
            "pass_rate": self.pass_rate,
            "latency_ms": dataclasses.asdict(self.latency) if self.latency else None,
            "stt_wer": None
            if self.wer is None
            else {
                "rate": self.wer.rate,
                "edits": self.wer.edits,
                "reference_words": self.wer.reference_words,
            },
            "rates": {key: rate.to_dict() for key, rate in self.rates.items()},
            "stages_p50_ms": self.stages_p50_ms,
            "split_turns": self.split_turns,
        }

    def summary(self) -> str:
        """One line: checks, latency p50/p90, STT WER."""
        judged = self.passed + self.failed
        rate = f" ({100 * self.pass_rate:.1f} %)" if self.pass_rate is not None else ""
        parts = [f"{self.passed}/{judged} checks passed{rate}"]
        if self.not_evaluated:
            parts.append(f"{self.not_evaluated} not evaluated")
        if self.latency:
            lat = self.latency
            parts.append(
                f"latency p50 {lat.p50_ms:.0f} ms, p90 {lat.p90_ms:.0f} ms, max {lat.max_ms:.0f} ms"
                f" over {lat.count} turn(s)"
            )
        if self.wer:
            parts.append(
                f"STT WER {100 * self.wer.rate:.1f} % "
                f"({self.wer.edits} error(s) / {self.wer.reference_words} words)"
            )
        return "; ".join(parts)

    def stages_text(self) -> str:
        """``commit wait 260 + LLM first token 120 + … (p50 per stage over N turns)``."""
        names = dict(STAGES)
        parts = [f"{names[k]} {v:.0f}" for k, v in self.stages_p50_ms.items() if v is not None]
        if not parts:
            return "no stage figures (the server's record was not readable)"
        return f"{' + '.join(parts)} ms (p50 of each stage over {self.split_turns} turn(s))"

    def rates_text(self) -> str:
        """``regret 0/14 (0.0 %); double answers …``."""
        return "; ".join(f"{label} {self.rates[key].text()}" for key, label in RATES)


def machine() -> str:
    """The machine in a few words (for figures: which machine made them)."""
    import os

    cores = os.cpu_count() or 0
    python = platform.python_version()
    return f"{platform.machine()} {platform.system()}, {cores} core(s), Python {python}"


@dataclass
class SuiteReport:
    """Every scenario call of one eval run."""

    results: list[ScenarioResult]
    target: str
    bot: str = ""
    started_at: float = field(default_factory=time.time)
    ended_at: float = field(default_factory=time.time)

    @property
    def passed(self) -> bool:
        """True when no check failed (not-evaluated checks do not fail a run)."""
        return all(r.failed == 0 for r in self.results)

    def conditions(self) -> list[str]:
        """The phone-line conditions of the run, in order of first use."""
        names: list[str] = []
        for r in self.results:
            if r.condition_name not in names:
                names.append(r.condition_name)
        return names

    def by_condition(self) -> dict[str, Figures]:
        """Figures per phone-line condition."""
        return {
            name: Figures.of([r for r in self.results if r.condition_name == name])
            for name in self.conditions()
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready data (timelines included; audio not)."""
        return {
            "target": self.target,
            "bot": self.bot,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "machine": machine(),
            "passed": self.passed,
            "overall": Figures.of(self.results).to_dict(),
            "conditions": {
                name: {
                    "description": next(
                        (
                            r.condition.describe()
                            for r in self.results
                            if r.condition_name == name and r.condition is not None
                        ),
                        "clean line",
                    ),
                    "figures": figures.to_dict(),
                }
                for name, figures in self.by_condition().items()
            },
            "scenarios": [
                {
                    "name": r.scenario.name,
                    "category": r.scenario.category,
                    "condition": r.condition_name,
                    "description": r.scenario.description,
                    "source": str(r.scenario.source),
                    "figures": Figures.of([r]).to_dict(),
                    "checks": [{**dataclasses.asdict(c), "where": c.where} for c in r.checks],
                    "call": dataclasses.asdict(r.observation),
                    "media_lost": r.media_lost,
                    "timeline": r.timeline.to_dict() if r.timeline is not None else None,
                }
                for r in self.results
            ],
        }

    def write_json(self, path: str | Path) -> None:
        """Write ``to_dict()`` as indented JSON (parent folders are created).

        Raises:
            OSError: the file cannot be written.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False, default=str))

    def print_text(self, out: TextIO) -> None:
        """The human report: per call its lines, checks and failures' timelines; the figures."""
        for result in self.results:
            _print_scenario(result, out)
        figures = Figures.of(self.results)
        out.write(f"\noverall ({len(self.results)} call(s)): {figures.summary()}\n")
        out.write(f"  latency by stage: {figures.stages_text()}\n")
        out.write(f"  turn-taking: {figures.rates_text()}\n")
        per_condition = self.by_condition()
        if len(per_condition) > 1:
            out.write("by phone-line condition:\n")
            for name, fig in per_condition.items():
                lat = f"p50 {fig.latency.p50_ms:.0f} ms" if fig.latency else "no latency"
                passed = f"{100 * fig.pass_rate:.0f} %" if fig.pass_rate is not None else "-"
                wer = f"{100 * fig.wer.rate:.1f} %" if fig.wer else "-"
                out.write(
                    f"  {name:<22} checks {passed:>5}, {lat}, WER {wer}; {fig.rates_text()}\n"
                )
        failed = [r for r in self.results if r.failed]
        if failed:
            out.write("failed calls (voiceagent calls show SID):\n")
            for r in failed:
                out.write(f"  {r.observation.call_sid}  {r.scenario.name} [{r.condition_name}]\n")
        out.write("RESULT: " + ("PASS" if self.passed else "FAIL") + "\n")


def _print_scenario(result: ScenarioResult, out: TextIO) -> None:
    scenario, seen = result.scenario, result.observation
    condition = f" [{result.condition_name}]" if result.condition is not None else ""
    out.write(f"\n== {scenario.name}{condition} ({scenario.source})")
    out.write(f": {scenario.description}\n" if scenario.description else "\n")
    if seen.call_sid:
        out.write(f"   call {seen.call_sid}\n")
    if seen.greeting.heard:
        out.write(
            f"   agent greets:  {seen.greeting.heard_text!r}{_cut(seen.greeting.interrupted)}\n"
        )
    for line, obs in zip(scenario.lines, seen.lines, strict=True):
        how = "" if line.kind.value == "turn" else f" [{line.kind.value.replace('_', '-')}]"
        keys = f" + keypad {line.dtmf}" if line.dtmf and line.say else ""
        out.write(f"   {line.index + 1:>2}. caller{how}: {line.label!r}{keys}\n")
        if not obs.spoken:
            out.write("       (never spoken)\n")
            continue
        if seen.transcript:
            understood = " | ".join(obs.understood) if obs.understood else "(nothing committed)"
            out.write(f"       understood: {understood!r}\n")
        latency = "no reply" if obs.latency_ms is None else f"after {obs.latency_ms:.0f} ms"
        turn = result.line_latency(obs)
        split = f" ({turn.split_text()})" if turn is not None else ""
        heard = f": {obs.reply.heard_text!r}" if obs.reply.heard else ""
        out.write(f"       agent {latency}{split}{heard}{_cut(obs.reply.interrupted)}\n")
    for check in result.checks:
        sid = f"  [{seen.call_sid}]" if check.passed is False and seen.call_sid else ""
        out.write(
            f"   {_MARK[check.passed]}  {check.where:<8} {check.check}: {check.evidence}{sid}\n"
        )
    out.write(f"   {Figures.of([result]).summary()}\n")
    if result.failed and result.timeline is not None and result.timeline.events:
        out.write(f"   timeline of {seen.call_sid or 'the call'} (stream clock):\n")
        print_timeline(result.timeline, out, compact=True, indent="     ")


def _cut(interrupted: bool | None) -> str:
    return " [interrupted]" if interrupted else ""
