"""Turn-taking series for ``/metrics``, the server's for every bot: read from each call's frames.

The server puts a :class:`CallMetricsTap` right before every call's output, whatever the bot's
pipeline factory built. It reads what the call's stages push downstream and what the output
pushes back:

- ``TurnCountsFrame`` (the turn engine's counters as they grow) → ``voiceagent_turn_<name>_total``;
- ``TurnMetricsFrame`` (one per committed turn, once final) → the commit delay histogram (the
  caller's voice end → the commit);
- ``UserTurnCommittedFrame`` then the output's next ``BotStartedSpeakingFrame`` → the reply
  delay histogram (the commit → the reply's first audio sent to the line);
- ``ProviderSwitchedFrame`` → ``voiceagent_turn_fallback_switches_total{stage}``.

A bot whose pipeline has no turn engine simply adds nothing to these series.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipecat.frames.frames import BotStartedSpeakingFrame, Frame, SystemFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from prometheus_client import CollectorRegistry, Counter, Histogram

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.frames import (
    ProviderSwitchedFrame,
    TurnCountsFrame,
    TurnMetricsFrame,
    UserTurnCommittedFrame,
)
from voiceagent.turns.state import COUNTERS

COUNTER_HELP: dict[str, str] = {
    "commits": "Caller utterances committed.",
    "revisions": "Committed turns whose words a later transcript of their audio changed.",
    "revisions_before_audible": "Revisions that regenerated a reply nobody had heard yet.",
    "revisions_after_audible": "Revisions of a reply the caller had begun to hear.",
    "regrets": "Commits after which the caller kept talking within the regret window.",
    "speculative_starts": "LLM generations started before the commit.",
    "speculative_hits": "Commits that released a speculative generation at once.",
    "speculations_cancelled": "Speculative generations withdrawn (the words changed).",
    "replies_cancelled": "Replies cancelled before they were heard (the caller went on).",
    "reruns": "Cancelled replies re-run because the caller's sound had no words.",
    "interruptions": "Barge-ins: the caller took the floor from the agent.",
    "backchannels_ignored": "Backchannels over the agent that did not interrupt it.",
    "noises_ignored": "Sounds over the agent that were not speech enough to interrupt it.",
    "false_interruptions": "Barge-ins with no words after them.",
    "resumes": "Agent speech resumed after a false interruption.",
    "pauses": "Agent audio paused for a sound from the caller.",
    "keypad_entries": "Keypad entries finished by the caller.",
    "watchdog_reruns": "Replies re-run by the no-progress watchdog.",
    "watchdog_fallbacks": "Fallback lines said when the watchdog gave up on a reply.",
    "reprompts": "Re-prompts of a silent caller.",
}
"""Help text of each turn engine counter (``voiceagent.turns.state.COUNTERS``)."""
COMMIT_DELAY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0)
REPLY_DELAY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


class TurnMetrics:
    """The turn-taking series of one server (app), summed over its calls."""

    def __init__(self, registry: CollectorRegistry) -> None:
        """Create the series on ``registry``."""
        self.counters = {
            name: Counter(f"voiceagent_turn_{name}", COUNTER_HELP[name], registry=registry)
            for name in COUNTERS
        }
        self.fallback_switches = Counter(
            "voiceagent_turn_fallback_switches",
            "Calls' switches from a failing provider to its fallback, by stage.",
            ["stage"],
            registry=registry,
        )
        self.commit_delay = Histogram(
            "voiceagent_turn_commit_delay_seconds",
            "From the end of the caller's voice to the commit of their turn.",
            buckets=COMMIT_DELAY_BUCKETS,
            registry=registry,
        )
        self.reply_delay = Histogram(
            "voiceagent_turn_reply_delay_seconds",
            "From a turn's commit to the first audio of the agent's reply sent to the line.",
            buckets=REPLY_DELAY_BUCKETS,
            registry=registry,
        )

    def count(self, changes: Mapping[str, int]) -> None:
        """Add one call's counter growth (unknown names and non-positive values are ignored)."""
        for name, grown in changes.items():
            counter = self.counters.get(name)
            if counter is not None and isinstance(grown, int) and grown > 0:
                counter.inc(grown)

    def tap(self, clock: Clock = DEFAULT_CLOCK) -> CallMetricsTap:
        """A new call's tap (place it right before the call's output)."""
        return CallMetricsTap(self, clock=clock)


class CallMetricsTap(FrameProcessor):
    """Reads one call's turn frames into :class:`TurnMetrics`; forwards every frame unchanged.

    Frame contract: consumes nothing; reads ``TurnCountsFrame``, ``TurnMetricsFrame``,
    ``UserTurnCommittedFrame``, ``ProviderSwitchedFrame`` (downstream) and
    ``BotStartedSpeakingFrame`` (upstream, from the output right after it). Runs in pipecat's
    direct mode: no queue or task of its own, a type check per frame.
    """

    def __init__(self, metrics: TurnMetrics, *, clock: Clock = DEFAULT_CLOCK) -> None:
        """Create the tap of one call."""
        super().__init__(name="call-metrics-tap", enable_direct_mode=True)
        self._series = metrics
        self._clock = clock
        self._committed_at: float | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Read the turn frames, forward everything."""
        await super().process_frame(frame, direction)
        if isinstance(frame, SystemFrame):  # every frame read here is one; audio is not
            self._read(frame, direction)
        await self.push_frame(frame, direction)

    def _read(self, frame: Frame, direction: FrameDirection) -> None:
        metrics = self._series
        if isinstance(frame, TurnCountsFrame):
            metrics.count(frame.changes)
        elif isinstance(frame, TurnMetricsFrame):
            delay = frame.data.get("silence_s")
            if isinstance(delay, int | float) and delay >= 0:
                metrics.commit_delay.observe(delay)
        elif isinstance(frame, UserTurnCommittedFrame):
            if not frame.revision:
                self._committed_at = self._clock.now()
        elif isinstance(frame, BotStartedSpeakingFrame):
            if direction is FrameDirection.UPSTREAM and self._committed_at is not None:
                metrics.reply_delay.observe(max(0.0, self._clock.now() - self._committed_at))
                self._committed_at = None
        elif isinstance(frame, ProviderSwitchedFrame):
            metrics.fallback_switches.labels(frame.stage or "?").inc()
