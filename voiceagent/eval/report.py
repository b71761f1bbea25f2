"""The eval's verdict: evidence per check, latency p50/p90, STT WER, pass rate; text, JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from voiceagent.eval.checks import CheckResult, sentence_lines
from voiceagent.eval.metrics import LatencySummary, WordErrors, corpus_wer
from voiceagent.eval.observe import CallObservation
from voiceagent.eval.scenario import Scenario

_MARK = {True: "PASS", False: "FAIL", None: "n/a "}


@dataclass
class ScenarioResult:
    """One scenario call: what was observed and how its checks came out."""

    scenario: Scenario
    observation: CallObservation
    checks: list[CheckResult]

    @property
    def failed(self) -> int:
        """Checks that failed."""
        return sum(1 for c in self.checks if c.passed is False)

    def latencies_ms(self) -> list[float]:
        """Reply latency of every line that ended a caller turn and got a reply."""
        return [
            seen.latency_ms
            for line, seen in zip(self.scenario.lines, self.observation.lines, strict=True)
            if line.kind.ends_turn and seen.latency_ms is not None
        ]

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

    passed: int
    failed: int
    not_evaluated: int
    latency: LatencySummary | None
    wer: WordErrors | None

    @classmethod
    def of(cls, results: list[ScenarioResult]) -> Figures:
        """Figures over ``results``."""
        checks = [c for r in results for c in r.checks]
        pairs = [pair for r in results for pair in r.transcript_pairs()]
        return cls(
            passed=sum(1 for c in checks if c.passed is True),
            failed=sum(1 for c in checks if c.passed is False),
            not_evaluated=sum(1 for c in checks if c.passed is None),
            latency=LatencySummary.of([ms for r in results for ms in r.latencies_ms()]),
            wer=corpus_wer(pairs) if pairs else None,
        )

    @property
    def pass_rate(self) -> float | None:
        """Passed share of the evaluated checks."""
        judged = self.passed + self.failed
        return self.passed / judged if judged else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
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


@dataclass
class SuiteReport:
    """Every scenario of one eval run."""

    results: list[ScenarioResult]
    target: str

    @property
    def passed(self) -> bool:
        """True when no check failed (not-evaluated checks do not fail a run)."""
        return all(r.failed == 0 for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready data."""
        return {
            "target": self.target,
            "passed": self.passed,
            "overall": Figures.of(self.results).to_dict(),
            "scenarios": [
                {
                    "name": r.scenario.name,
                    "description": r.scenario.description,
                    "source": str(r.scenario.source),
                    "figures": Figures.of([r]).to_dict(),
                    "checks": [{**dataclasses.asdict(c), "where": c.where} for c in r.checks],
                    "call": dataclasses.asdict(r.observation),
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
        target.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def print_text(self, out: TextIO) -> None:
        """The human report: per scenario the call, the checks with evidence, the figures."""
        for result in self.results:
            _print_scenario(result, out)
        out.write(
            f"\noverall ({len(self.results)} call(s)): {Figures.of(self.results).summary()}\n"
        )
        out.write("RESULT: " + ("PASS" if self.passed else "FAIL") + "\n")


def _print_scenario(result: ScenarioResult, out: TextIO) -> None:
    scenario, seen = result.scenario, result.observation
    out.write(f"\n== {scenario.name} ({scenario.source})")
    out.write(f": {scenario.description}\n" if scenario.description else "\n")
    if seen.greeting.heard:
        out.write(
            f"   agent greets:  {seen.greeting.heard_text!r}{_cut(seen.greeting.interrupted)}\n"
        )
    for line, obs in zip(scenario.lines, seen.lines, strict=True):
        how = "" if line.kind.value == "turn" else f" [{line.kind.value.replace('_', '-')}]"
        out.write(f"   {line.index + 1:>2}. caller{how}: {line.label!r}\n")
        if not obs.spoken:
            out.write("       (never spoken)\n")
            continue
        if seen.transcript:
            understood = " | ".join(obs.understood) if obs.understood else "(nothing committed)"
            out.write(f"       understood: {understood!r}\n")
        latency = "no reply" if obs.latency_ms is None else f"after {obs.latency_ms:.0f} ms"
        heard = f": {obs.reply.heard_text!r}" if obs.reply.heard else ""
        out.write(f"       agent {latency}{heard}{_cut(obs.reply.interrupted)}\n")
    for check in result.checks:
        out.write(f"   {_MARK[check.passed]}  {check.where:<8} {check.check}: {check.evidence}\n")
    out.write(f"   {Figures.of([result]).summary()}\n")


def _cut(interrupted: bool | None) -> str:
    return " [interrupted]" if interrupted else ""
