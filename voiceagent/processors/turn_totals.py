"""Process-wide turn-taking counters for /metrics: finished calls folded in, live calls summed.

Each call's ``StabilityCommitRouter`` is tracked while the call lives and folded into the totals
when it ends (``on_finished``), so a scrape is cheap and nothing is lost.
"""

from __future__ import annotations

import weakref

from voiceagent.processors.stability_router import RouterStats, StabilityCommitRouter

COUNTERS = (
    ("commits", "Caller utterances committed."),
    ("speculative_starts", "LLM generations started before the commit."),
    ("speculative_hits", "Commits that released a speculative generation at once."),
    ("cancellations", "Speculative generations cancelled (caller resumed, text changed)."),
    ("regrets", "Commits after which the caller kept talking within the regret window."),
    ("replies_cancelled", "Replies cancelled because the caller kept talking."),
    ("reruns", "Cancelled replies re-run because the caller's sound had no words."),
)


class TurnTotals:
    """Sums ``RouterStats`` over every call of the process."""

    def __init__(self) -> None:
        self.finished: dict[str, int] = dict.fromkeys((name for name, _ in COUNTERS), 0)
        self.calls = 0
        self._live: weakref.WeakSet[StabilityCommitRouter] = weakref.WeakSet()

    def track(self, router: StabilityCommitRouter) -> None:
        """Count this router's turns (live now, folded in when its call ends)."""
        self._live.add(router)

        def finished(stats: RouterStats) -> None:
            self._live.discard(router)
            self.calls += 1
            for name in self.finished:
                self.finished[name] += getattr(stats, name)

        router.on_finished = finished

    def snapshot(self) -> dict[str, int]:
        """Totals including the calls still running."""
        totals = dict(self.finished)
        for router in list(self._live):
            for name in totals:
                totals[name] += getattr(router.stats, name)
        return totals

    def render(self, prefix: str = "voiceagent_") -> str:
        """Prometheus text lines (counters ``<prefix>turn_<name>_total``)."""
        lines: list[str] = []
        totals = self.snapshot()
        for name, help_text in COUNTERS:
            metric = f"{prefix}turn_{name}_total"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            lines.append(f"{metric} {totals[name]}")
        return "\n".join(lines) + "\n"
