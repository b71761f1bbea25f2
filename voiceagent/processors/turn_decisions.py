"""What the CommitPolicy decides: plain values the StabilityCommitRouter turns into frames."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Speculate:
    """Start the LLM on ``text`` before the turn is committed."""

    text: str
    norm: str


@dataclass(frozen=True)
class CancelSpeculation:
    """The speculated text is no longer the caller's utterance."""

    reason: str


@dataclass(frozen=True)
class Commit:
    """The caller's turn is over: ``text`` joins the context and gets a reply."""

    text: str
    norm: str
    reason: str
    wait_s: float | None
    required_wait_s: float
    hesitation: bool
    utterance_s: float | None
    learned_pause_s: float | None
    end_of_turn_p: float | None = None


@dataclass(frozen=True)
class Regret:
    """The caller kept talking ``after_s`` after the last commit."""

    after_s: float


@dataclass(frozen=True)
class CancelReply:
    """Cancel the reply to the last commit (the caller is continuing; the agent is silent)."""


@dataclass(frozen=True)
class RegretWindowClosed:
    """The last commit stood: no regret within the window."""


@dataclass(frozen=True)
class Rerun:
    """The caller's resumption had no words (a cough): answer the committed turn after all."""


Decision = (
    Speculate | CancelSpeculation | Commit | Regret | CancelReply | RegretWindowClosed | Rerun
)
