"""A run against a previous one (``--baseline old.json``): what got better, what got worse.

Both are eval JSON reports. Figures are compared where both runs have them (a lower latency,
WER or rate is better; a higher pass rate is better); checks are matched by call, condition,
place and name, so a check that passed before and fails now is a regression.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TextIO

from voiceagent.eval.rates import RATES
from voiceagent.timeline.latency import STAGES

NOISE_MS = 20.0
"""Latency changes smaller than this are reported as unchanged."""


@dataclass(frozen=True)
class FigureChange:
    """One figure in both runs."""

    name: str
    before: float | None
    after: float | None
    unit: str
    higher_is_better: bool = False

    @property
    def verdict(self) -> str:
        """``better``, ``worse``, ``same`` or ``new``/``gone`` when one run lacks it."""
        if self.before is None or self.after is None:
            return "n/a"
        delta = self.after - self.before
        threshold = NOISE_MS if self.unit == "ms" else 1e-9
        if abs(delta) <= threshold:
            return "same"
        better = delta > 0 if self.higher_is_better else delta < 0
        return "better" if better else "worse"

    def shown(self, value: float | None) -> str:
        """The value with its unit."""
        if value is None:
            return "-"
        return f"{value:.0f} ms" if self.unit == "ms" else f"{100 * value:.1f} %"


@dataclass
class Comparison:
    """Figures and checks of two runs side by side."""

    figures: list[FigureChange] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    new_checks: int = 0
    gone_checks: int = 0
    baseline_when: float | None = None


def _figures(data: dict[str, Any]) -> dict[str, tuple[float | None, str, bool]]:
    overall = data.get("overall") or {}
    latency = overall.get("latency_ms") or {}
    wer = overall.get("stt_wer") or {}
    out: dict[str, tuple[float | None, str, bool]] = {
        "pass rate": (overall.get("pass_rate"), "%", True),
        "latency p50": (latency.get("p50_ms"), "ms", False),
        "latency p90": (latency.get("p90_ms"), "ms", False),
        "STT WER": (wer.get("rate"), "%", False),
    }
    rates = overall.get("rates") or {}
    for key, label in RATES:
        out[label] = ((rates.get(key) or {}).get("rate"), "%", False)
    stages = overall.get("stages_p50_ms") or {}
    for key, label in STAGES:
        out[f"{label} p50"] = (stages.get(key), "ms", False)
    return out


def _checks(data: dict[str, Any]) -> dict[str, bool | None]:
    out = {}
    for scenario in data.get("scenarios") or []:
        call = f"{scenario.get('name')} [{scenario.get('condition', 'clean')}]"
        for check in scenario.get("checks") or []:
            out[f"{call} {check.get('where')}: {check.get('check')}"] = check.get("passed")
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> Comparison:
    """Compare two eval JSON reports (``before`` is the baseline)."""
    old, new = _figures(before), _figures(after)
    result = Comparison(baseline_when=before.get("started_at"))
    for name, (value, unit, higher) in new.items():
        result.figures.append(FigureChange(name, old.get(name, (None,))[0], value, unit, higher))
    old_checks, new_checks = _checks(before), _checks(after)
    for key, passed in new_checks.items():
        if key not in old_checks:
            result.new_checks += 1
        elif old_checks[key] is True and passed is False:
            result.regressions.append(key)
        elif old_checks[key] is False and passed is True:
            result.fixed.append(key)
    result.gone_checks = sum(1 for key in old_checks if key not in new_checks)
    return result


def print_comparison(comparison: Comparison, out: TextIO) -> None:
    """The comparison as text."""
    out.write("\ncompared with the baseline:\n")
    for f in comparison.figures:
        if f.before is None and f.after is None:
            continue
        out.write(f"  {f.name:<28} {f.shown(f.before):>9} → {f.shown(f.after):>9}  {f.verdict}\n")
    out.write(
        f"  checks: {len(comparison.fixed)} now pass, {len(comparison.regressions)} now fail"
        f" ({comparison.new_checks} new, {comparison.gone_checks} gone)\n"
    )
    for key in comparison.regressions:
        out.write(f"    now FAILS: {key}\n")
    for key in comparison.fixed:
        out.write(f"    now passes: {key}\n")
