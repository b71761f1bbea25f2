"""The turn engine's records: the open caller turn, the last committed one, the counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voiceagent.turns.endpointing import Stability
from voiceagent.turns.transcript import TurnTranscript


@dataclass(slots=True)
class Speculation:
    """An LLM request started on words not yet committed."""

    generation: int
    norm: str
    version: int  # the conversation's version it was built on
    started_at: float


@dataclass(slots=True)
class OpenUtterance:
    """The caller's turn since the last commit."""

    transcript: TurnTranscript = field(default_factory=TurnTranscript)
    stability: Stability = field(default_factory=Stability)
    opened: bool = False  # OpenTurn was emitted
    began_at: float | None = None
    spec: Speculation | None = None
    spec_count: int = 0
    no_speculation: bool = False  # the LLM withdrew one (it wanted a tool): not again
    blocked_norm: str | None = None  # speculated words the caller went on from
    sounds_unfinished: bool = False  # the end-of-turn model's verdict at the last stop
    end_of_turn_p: float | None = None


@dataclass(slots=True)
class CommittedTurn:
    """The last committed caller turn, kept for revisions, regret and its reply."""

    turn_id: int
    text: str
    norm: str
    transcript: TurnTranscript
    voice_end: float
    committed_at: float
    generation: int
    record: dict[str, Any]
    reply_pending: bool = True  # the reply is on its way and not audible yet
    audible_at: float | None = None
    resumed_at: float | None = None  # the caller's first speech after the commit
    regret_open: bool = True
    wordless_cancel: bool = False  # its reply was cancelled for speech with no words yet
    keypad: bool = False


@dataclass(slots=True)
class FalseInterruption:
    """After a barge-in: if no words follow, the agent goes on with what was not heard."""

    quiet_since: float | None
    text: str | None = None  # the unheard remainder, once the output reported it
    due: bool = False


@dataclass
class TurnStats:
    """Counters of one call's turn-taking (summed over calls on /metrics)."""

    commits: int = 0
    revisions: int = 0
    revisions_before_audible: int = 0
    revisions_after_audible: int = 0
    regrets: int = 0
    speculative_starts: int = 0
    speculative_hits: int = 0
    speculations_cancelled: int = 0
    replies_cancelled: int = 0
    reruns: int = 0
    interruptions: int = 0
    interruptions_by: dict[str, int] = field(default_factory=dict)
    backchannels_ignored: int = 0
    noises_ignored: int = 0
    false_interruptions: int = 0
    resumes: int = 0
    pauses: int = 0
    keypad_entries: int = 0
    watchdog_reruns: int = 0
    watchdog_fallbacks: int = 0
    reprompts: int = 0
    learned_pause_s: float | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)

    def counters(self) -> tuple[int, ...]:
        """The counters' values, in ``COUNTERS`` order (cheap to compare)."""
        return tuple(getattr(self, name) for name in COUNTERS)

    def interrupted(self, reason: str) -> None:
        """Count one barge-in and why it happened."""
        self.interruptions += 1
        self.interruptions_by[reason] = self.interruptions_by.get(reason, 0) + 1


COUNTERS: tuple[str, ...] = (
    "commits",
    "revisions",
    "revisions_before_audible",
    "revisions_after_audible",
    "regrets",
    "speculative_starts",
    "speculative_hits",
    "speculations_cancelled",
    "replies_cancelled",
    "reruns",
    "interruptions",
    "backchannels_ignored",
    "noises_ignored",
    "false_interruptions",
    "resumes",
    "pauses",
    "keypad_entries",
    "watchdog_reruns",
    "watchdog_fallbacks",
    "reprompts",
)
"""The int fields of ``TurnStats``: the counters reported in ``TurnCountsFrame``."""
