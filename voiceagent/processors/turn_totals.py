"""Process-wide turn-taking counters for /metrics: finished calls folded in, live calls summed.

Each call's ``TurnProcessor`` is tracked while the call lives and folded into the totals when it
ends (``on_finished``), so a scrape is cheap and nothing is lost. Counters of the call's other
stages (fallback switches) come from a ``stage_counts`` callable read at the same moments.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from voiceagent.turns.processor import TurnProcessor
from voiceagent.turns.state import TurnStats

COUNTERS = (
    ("commits", "Caller utterances committed."),
    ("revisions", "Committed turns whose words a later transcript of their audio changed."),
    ("revisions_before_audible", "Revisions that regenerated a reply nobody had heard yet."),
    ("speculative_starts", "LLM generations started before the commit."),
    ("speculative_hits", "Commits that released a speculative generation at once."),
    ("speculations_cancelled", "Speculative generations withdrawn (the words changed)."),
    ("regrets", "Commits after which the caller kept talking within the regret window."),
    ("replies_cancelled", "Replies cancelled before they were heard (the caller went on)."),
    ("reruns", "Cancelled replies re-run because the caller's sound had no words."),
    ("interruptions", "Barge-ins: the caller took the floor from the agent."),
    ("backchannels_ignored", "Backchannels over the agent that did not interrupt it."),
    ("false_interruptions", "Barge-ins with no words after them."),
    ("resumes", "Agent speech resumed after a false interruption."),
    ("pauses", "Agent audio paused for a sound from the caller."),
    ("keypad_entries", "Keypad entries finished by the caller."),
    ("reprompts", "Re-prompts of a silent caller."),
)
STAGE_COUNTERS = (
    ("fallback_switches", "Calls' switches from a failing provider to its fallback."),
)

StageCounts = Callable[[], dict[str, int]]


class TurnTotals:
    """Sums ``TurnStats`` over every call of the process."""

    def __init__(self) -> None:
        names = [name for name, _ in (*COUNTERS, *STAGE_COUNTERS)]
        self.finished: dict[str, int] = dict.fromkeys(names, 0)
        self.calls = 0
        self._live: weakref.WeakKeyDictionary[TurnProcessor, StageCounts | None] = (
            weakref.WeakKeyDictionary()
        )

    def track(self, turns: TurnProcessor, stage_counts: StageCounts | None = None) -> None:
        """Count this call's turns (live now, folded in when its call ends)."""
        self._live[turns] = stage_counts

        def finished(stats: TurnStats) -> None:
            self._live.pop(turns, None)
            self.calls += 1
            self._add(self.finished, stats, stage_counts)

        turns.on_finished = finished

    @staticmethod
    def _add(totals: dict[str, int], stats: TurnStats, stage_counts: StageCounts | None) -> None:
        for name, _ in COUNTERS:
            totals[name] += getattr(stats, name)
        if stage_counts is not None:
            for name, value in stage_counts().items():
                totals[name] = totals.get(name, 0) + value

    def snapshot(self) -> dict[str, int]:
        """Totals including the calls still running."""
        totals = dict(self.finished)
        for turns, stage_counts in list(self._live.items()):
            self._add(totals, turns.stats, stage_counts)
        return totals

    def render(self, prefix: str = "voiceagent_") -> str:
        """Prometheus text lines (counters ``<prefix>turn_<name>_total``)."""
        lines: list[str] = []
        totals = self.snapshot()
        for name, help_text in (*COUNTERS, *STAGE_COUNTERS):
            metric = f"{prefix}turn_{name}_total"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            lines.append(f"{metric} {totals[name]}")
        return "\n".join(lines) + "\n"
