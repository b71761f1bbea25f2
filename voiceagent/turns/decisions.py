"""What the turn engine decides: plain values the ``TurnProcessor`` turns into frames.

Each decision names one thing to do now. The engine never does I/O; the processor maps
decisions onto pipecat's frames (in parentheses below) in the order they are returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipecat.processors.aggregators.llm_context import LLMContext


@dataclass(frozen=True)
class OpenTurn:
    """The caller started a new turn (``UserStartedSpeakingFrame``)."""


@dataclass(frozen=True)
class Speculate:
    """Start the LLM on words not yet committed; its reply is held.

    (``LLMContextFrame`` with ``speculation=True``: pipecat's speculation gate in the LLM
    service holds the reply until the commit.)
    """

    generation: int
    text: str
    context: LLMContext


@dataclass(frozen=True)
class CancelSpeculation:
    """The speculated words are no longer the caller's turn (``EagerEndOfTurnCancelFrame``)."""

    generation: int
    reason: str


@dataclass(frozen=True)
class Commit:
    """The caller's turn is over and gets a reply.

    ``speculative_hit``: the held speculation answers exactly this turn and is released
    (``UserStoppedSpeakingFrame``); otherwise a new request starts (``UserStoppedSpeakingFrame``
    then ``LLMContextFrame``).
    """

    turn_id: int
    text: str
    reason: str
    generation: int
    speculative_hit: bool
    context: LLMContext | None
    at: float


@dataclass(frozen=True)
class Revise:
    """A later transcript of a committed turn's audio changed its words (same turn).

    ``context`` is set when the reply was not audible yet: it is cancelled and regenerated
    on the revised words (``InterruptionFrame`` downstream, then ``LLMContextFrame``).
    """

    turn_id: int
    text: str
    generation: int | None
    context: LLMContext | None


@dataclass(frozen=True)
class StartReply:
    """Answer the conversation as it stands (``LLMContextFrame``): a re-run, a tool follow-up."""

    generation: int
    context: LLMContext
    reason: str


@dataclass(frozen=True)
class CancelReply:
    """Drop a reply that is not audible yet (``InterruptionFrame`` downstream only)."""

    reason: str


@dataclass(frozen=True)
class Interrupt:
    """Barge-in: stop the agent (``InterruptionFrame`` both ways; the output sends ``clear``)."""

    reason: str


@dataclass(frozen=True)
class PausePlayback:
    """Stop sending agent audio for now (``PlaybackPauseFrame``)."""

    reason: str


@dataclass(frozen=True)
class ResumePlayback:
    """Send agent audio again (``PlaybackResumeFrame``)."""

    reason: str


@dataclass(frozen=True)
class Say:
    """Speak fixed words (``TTSSpeakFrame``); ``in_context``: part of the conversation."""

    text: str
    in_context: bool
    reason: str


@dataclass(frozen=True)
class KeypadEntered:
    """The caller finished a keypad entry; the bot may act on it, else it becomes a turn."""

    digits: str


@dataclass(frozen=True)
class TurnReport:
    """Figures of one committed turn, final once its regret window closed."""

    turn_id: int
    data: dict[str, Any] = field(default_factory=dict)


Decision = (
    OpenTurn
    | Speculate
    | CancelSpeculation
    | Commit
    | Revise
    | StartReply
    | CancelReply
    | Interrupt
    | PausePlayback
    | ResumePlayback
    | Say
    | KeypadEntered
    | TurnReport
)
