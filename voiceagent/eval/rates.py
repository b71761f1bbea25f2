"""Turn-taking rates of eval calls: regret, double answers, barge-ins, premature replies.

Each rate is ``count / opportunities`` over the calls, from the call's timeline (the server's
events and the caller's side on the stream clock) and the scenario's script:

- *regret*: commits after which the caller kept talking within the regret window (the server's
  turn figures) / commits;
- *double answer*: caller turns that got two or more agent replies / caller turns that got one
  (a resumed false interruption does not count);
- *false barge-in*: the agent stopped for the caller (a barge-in decision, or a ``clear`` the
  caller's line received when the server's decisions are unknown) outside a scripted barge-in
  or keypad line / agent turns;
- *missed barge-in*: scripted barge-in lines over the agent that did not stop it / such lines;
- *premature reply*: caller lines during which — or in the mid-sentence pause after which —
  agent audio started reaching the caller / caller lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voiceagent.eval.scenario import LineKind

if TYPE_CHECKING:
    from voiceagent.eval.report import ScenarioResult

REACTION_S = 1.5
"""A barge-in within this long after the caller's line ended still answers it."""
PREMATURE_GRACE_S = 0.3
"""Agent audio starting this soon after a line began is the previous reply's tail."""
RATES = (
    ("regret", "regret"),
    ("double_answer", "double answers"),
    ("false_barge_in", "false barge-ins"),
    ("missed_barge_in", "missed barge-ins"),
    ("premature_reply", "premature replies"),
)


@dataclass(frozen=True)
class Rate:
    """``count`` of ``of`` opportunities."""

    count: int
    of: int

    @property
    def value(self) -> float | None:
        """The share (None without opportunities)."""
        return self.count / self.of if self.of else None

    def __add__(self, other: Rate) -> Rate:
        return Rate(self.count + other.count, self.of + other.of)

    def text(self) -> str:
        """``2/14 (14.3 %)`` or ``-``."""
        value = self.value
        return "-" if value is None else f"{self.count}/{self.of} ({100 * value:.1f} %)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"count": self.count, "of": self.of, "rate": self.value}


def call_rates(result: ScenarioResult) -> dict[str, Rate]:
    """The rates of one call (empty opportunities where the facts are unknown)."""
    timeline = result.timeline
    lines = result.scenario.lines
    seen = result.observation.lines
    if timeline is None:
        return {key: Rate(0, 0) for key, _ in RATES}
    server = timeline.has_server_side
    spans = {s.turn_id: s for s in timeline.caller_lines() if s.turn_id is not None}
    heard = [s.start_s for s in timeline.heard_spans()]

    commits = list(timeline.of("caller"))
    regrets = sum(1 for e in timeline.of("metrics") if e.data.get("regret"))
    regret = Rate(regrets, len(commits)) if server else Rate(0, 0)

    stops = [e.at_s for e in timeline.of("decision") if e.data.get("kind") == "barge_in"]
    if not server:
        stops = [e.at_s for e in timeline.of("caller_clear") if e.data.get("discarded_s", 0) > 0]
    intended = []
    barge_lines = 0
    missed = 0
    for line, obs in zip(lines, seen, strict=True):
        span = spans.get(line.index)
        if span is None:
            continue
        window = (span.start_s, span.end_s + REACTION_S)
        if line.kind is LineKind.BARGE_IN or line.dtmf:
            intended.append(window)
        if line.kind is LineKind.BARGE_IN and obs.spoken:
            barge_lines += 1
            if not any(window[0] <= t <= window[1] for t in stops):
                missed += 1
    false = sum(1 for t in stops if not any(a <= t <= b for a, b in intended))
    agent_turns = sum(1 for _ in timeline.of("agent")) if server else len(heard)

    doubles, answered = 0, 0
    resumes = [e.at_s for e in timeline.of("decision") if e.data.get("reason") == "resume"]
    agent_starts = [
        s.start_s
        for s, e in zip(timeline.agent_spans(), timeline.of("agent"), strict=True)
        if e.data.get("in_context", True) and (e.text or "").strip()
    ]
    premature, spoken_lines = 0, 0
    ordered = sorted(spans.values(), key=lambda s: s.start_s)
    for n, span in enumerate(ordered):
        line = lines[span.turn_id]
        following = ordered[n + 1].start_s if n + 1 < len(ordered) else float("inf")
        if line.kind in (LineKind.TURN, LineKind.CONTINUES):
            spoken_lines += 1
            until = following if line.kind is LineKind.CONTINUES else span.end_s
            if any(span.start_s + PREMATURE_GRACE_S < t < until for t in heard):
                premature += 1
        if line.kind.ends_turn and server:
            replies = [t for t in agent_starts if span.end_s <= t < following]
            if replies:
                answered += 1
                resumed = any(span.end_s <= t < following for t in resumes)
                if len(replies) >= 2 and not resumed:
                    doubles += 1
    return {
        "regret": regret,
        "double_answer": Rate(doubles, answered),
        "false_barge_in": Rate(false, agent_turns),
        "missed_barge_in": Rate(missed, barge_lines),
        "premature_reply": Rate(premature, spoken_lines),
    }


def sum_rates(results: list[ScenarioResult]) -> dict[str, Rate]:
    """The rates over several calls."""
    total = {key: Rate(0, 0) for key, _ in RATES}
    for result in results:
        for key, rate in call_rates(result).items():
            total[key] = total[key] + rate
    return total
