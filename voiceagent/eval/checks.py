"""Scenario expectations judged on an observed call, each with the evidence for its verdict.

A check passes, fails, or is not evaluated (``passed is None``) when the facts it needs are not
observable, e.g. the agent's words on a remote server that reports no transcript. A call that
could not be placed fails every check it declared.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from voiceagent.eval.metrics import word_errors
from voiceagent.eval.observe import CallObservation, LineObservation, ReplyObservation
from voiceagent.eval.scenario import Expect, LineKind, Scenario, ScenarioLine

NO_TRANSCRIPT = "not evaluated: the server reports no transcript (remote --url); run in-process"


@dataclass(frozen=True)
class CheckResult:
    """One expectation's verdict."""

    scenario: str
    line: int | None
    """0-based line index; None for the greeting and the call itself."""
    check: str
    passed: bool | None
    evidence: str

    @property
    def where(self) -> str:
        """``greeting``, ``call`` or ``line N`` (1-based), for reports."""
        if self.line is None:
            return "call" if self.check == "call completes" else "greeting"
        return f"line {self.line + 1}"


def evaluate(scenario: Scenario, observation: CallObservation) -> list[CheckResult]:
    """Every check of ``scenario`` judged on ``observation``, in file order."""
    results: list[CheckResult] = []
    if observation.error is not None:
        results.append(CheckResult(scenario.name, None, "call completes", False, observation.error))
    if scenario.greeting is not None:
        greeting = _reply_checks(
            scenario.name, None, scenario.greeting, observation.greeting, observation
        )
        if observation.error is not None:
            greeting = [
                replace(r, passed=False, evidence="not run: the call failed") for r in greeting
            ]
        results += greeting
    for line, seen in zip(scenario.lines, observation.lines, strict=True):
        results += _line_checks(scenario, line, seen, observation)
    return results


def _verdict(name: str, line: int | None, check: str):
    def make(passed: bool | None, evidence: str) -> CheckResult:
        return CheckResult(name, line, check, passed, evidence)

    return make


def _line_checks(
    scenario: Scenario, line: ScenarioLine, seen: LineObservation, call: CallObservation
) -> list[CheckResult]:
    expect = line.expect
    results = _reply_checks(scenario.name, line.index, expect, seen.reply, call)
    if expect.within_ms is not None:
        make = _verdict(scenario.name, line.index, f"within {expect.within_ms:.0f} ms")
        if seen.latency_ms is None:
            results.append(make(False, "no agent audio started before the caller's next line"))
        else:
            ok = seen.latency_ms <= expect.within_ms
            results.append(
                make(ok, f"first agent audio {seen.latency_ms:.0f} ms after end of speech")
            )
    if expect.no_reply is not None:
        make = _verdict(scenario.name, line.index, "no reply" if expect.no_reply else "a reply")
        if seen.latency_ms is None:
            results.append(
                make(expect.no_reply, "no agent audio until the caller's next line ended")
            )
        else:
            evidence = f"agent audio started {seen.latency_ms:.0f} ms after the line ended"
            results.append(make(not expect.no_reply, evidence))
    if expect.max_wer is not None:
        results.append(_wer_check(scenario, line, expect.max_wer, call))
    for tool in expect.tools:
        make = _verdict(scenario.name, line.index, f"calls {tool}")
        if not call.transcript:
            results.append(make(None, NO_TRANSCRIPT))
        else:
            called = ", ".join(seen.tools) if seen.tools else "no tool"
            results.append(make(tool in seen.tools, f"called {called}"))
    if expect.committed is not None:
        make = _verdict(
            scenario.name,
            line.index,
            "taken as a turn" if expect.committed else "not taken as a turn",
        )
        if not call.transcript:
            results.append(make(None, NO_TRANSCRIPT))
        else:
            committed = bool(seen.understood)
            evidence = (
                f"committed {' | '.join(repr(t) for t in seen.understood)}"
                if committed
                else "no caller turn committed while it was spoken"
            )
            results.append(make(committed == expect.committed, evidence))
    if call.error is not None or not seen.spoken:
        why = "not run: the call failed" if call.error else _never_spoken(call)
        return [replace(result, passed=False, evidence=why) for result in results]
    return results


def _reply_checks(
    name: str,
    index: int | None,
    expect: Expect,
    reply: ReplyObservation,
    call: CallObservation,
) -> list[CheckResult]:
    results: list[CheckResult] = []
    heard = reply.heard_text
    shown = f"heard {heard!r}" if heard else "the caller heard no reply"

    def text_check(check: str, judge) -> None:
        make = _verdict(name, index, check)
        if not call.transcript:
            results.append(make(None, NO_TRANSCRIPT))
        elif not heard:
            results.append(make(False, shown))
        else:
            results.append(make(judge(heard), shown))

    for pattern in expect.contains:
        text_check(f"contains {pattern.source!r}", pattern.found_in)
    if expect.contains_any:
        listed = ", ".join(repr(p.source) for p in expect.contains_any)
        text_check(
            f"contains any of {listed}",
            lambda text: any(p.found_in(text) for p in expect.contains_any),
        )
    for pattern in expect.not_contains:
        make = _verdict(name, index, f"does not contain {pattern.source!r}")
        if not call.transcript:
            results.append(make(None, NO_TRANSCRIPT))
        else:
            results.append(make(not pattern.found_in(heard), shown))
    if expect.interrupted is not None:
        make = _verdict(name, index, "interrupted" if expect.interrupted else "not interrupted")
        if reply.interrupted is None:
            results.append(make(False, "the caller heard no reply"))
        elif call.transcript:
            state = "cut off" if reply.interrupted else "played to the end"
            results.append(make(reply.interrupted == expect.interrupted, f"{state}; {shown}"))
        else:
            state = f"{reply.clears} clear(s) dropped its audio" if reply.clears else "no clear"
            results.append(make(reply.interrupted == expect.interrupted, state))
    return results


def _wer_check(
    scenario: Scenario, line: ScenarioLine, limit: float, call: CallObservation
) -> CheckResult:
    make = _verdict(scenario.name, line.index, f"understood with WER ≤ {limit:.2f}")
    if not call.transcript:
        return make(None, NO_TRANSCRIPT)
    group = sentence_lines(scenario, line.index)
    said = " ".join(scenario.lines[i].say for i in group)
    understood = " ".join(text for i in group for text in call.lines[i].understood)
    errors = word_errors(said, understood)
    evidence = f"WER {errors.rate:.2f}: said {said!r}, committed {understood!r}"
    return make(errors.rate <= limit + 1e-9, evidence)


def sentence_lines(scenario: Scenario, index: int) -> list[int]:
    """Indexes of the lines one caller sentence spans: ``index`` and the lines continued into it."""
    start = index
    while start > 0 and scenario.lines[start - 1].kind is LineKind.CONTINUES:
        start -= 1
    return list(range(start, index + 1))


def _never_spoken(call: CallObservation) -> str:
    spoken = sum(1 for line in call.lines if line.spoken)
    who = "the server" if call.closed_by_server else "the caller"
    code = f", close {call.close}" if call.close else ""
    return f"never spoken: the call ended (by {who}{code}) after {spoken} line(s)"
