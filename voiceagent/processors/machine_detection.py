"""Person or answering machine? A pure decision core, driven by the call's audio time.

An outbound call's first seconds tell them apart (the agent greets at once, so what answers
is heard over or right after the greeting):

- a **beep** (a steady 0.7–2.5 kHz tone, :mod:`voiceagent.processors.beep`) is a machine, and
  its end is the end of the greeting;
- a **greeting-shaped first utterance**: speech that starts within ``greeting_start_s`` of the
  answer (a machine does not wait for the agent's greeting to end) and goes on, with no pause
  of ``pause_s``, for ``long_greeting_s`` — a person says "Hello?" and waits;
- the **wording** of such a first utterance ("leave a message", "not available", "after the
  tone") — a person answering the agent later may well say "I'm not available";
- or **Twilio's AMD** result, when the call uses it (``AnsweredBy``).

A first utterance that ends short, with none of that, is a person, and the core goes quiet.
While a greeting may still begin, and from an early first utterance until the verdict
(:attr:`~MachineDetection.holds_turns`), what is said may be a machine's greeting: the pipeline
keeps it from the turn engine until then (``hold_turns``), so the agent never answers one.
Once it is a machine, the greeting has ended at the beep's end, after ``end_silence_s`` of
silence, or at the latest ``max_greeting_s`` later. No speech at all within
``silence_timeout_s`` (or nothing decided within ``listen_s``) is undecided: the call goes on.

Times are seconds of the call's audio (frames received × their length), so the core needs no
clock and is tested by feeding it events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from voiceagent.processors.beep import Beep, BeepParams

DEFAULT_WORDING = (
    r"\bleave (?:me |us )?(?:a |your )?(?:brief |short )?(?:message|voice ?mail)",
    r"\b(?:is|am|are|is currently|am currently) (?:not available|unavailable)",
    r"\bcan(?:no|')?t (?:come to|take|answer|get to) (?:the phone|your call|the call)",
    r"\bunable to (?:take|answer) (?:your|the) call",
    r"\b(?:after|at) the (?:tone|beep)",
    r"\byou(?:'ve| have) reached\b",
    r"\b(?:voice ?mail|mailbox)\b",
    r"\brecord your message",
)
"""Phrases of recorded greetings (lower-case regular expressions)."""
_EPS = 1e-6  # audio times are sums of frame lengths: 1.2 may come out as 1.1999999


class AnsweringMachineParams(BaseModel):
    """Thresholds of the agent's own answering machine detection (seconds of call audio)."""

    model_config = ConfigDict(extra="forbid")

    listen_s: float = Field(30.0, gt=0.0)
    greeting_start_s: float = Field(3.0, gt=0.0)
    long_greeting_s: float = Field(3.0, gt=0.0)
    pause_s: float = Field(1.2, gt=0.0)
    end_silence_s: float = Field(2.0, gt=0.0)
    max_greeting_s: float = Field(20.0, gt=0.0)
    silence_timeout_s: float = Field(10.0, gt=0.0)
    hold_turns: bool = True
    """Keep an early first utterance from the turn engine until the verdict (a person's first
    words are then answered once they are known to be a person's, ``pause_s`` after they end)."""
    wording: tuple[str, ...] = DEFAULT_WORDING
    beep: BeepParams = Field(default_factory=BeepParams)


class Phase(Enum):
    """Where the detection stands."""

    LISTENING = "listening"
    HUMAN = "human"
    MACHINE = "machine"
    GREETING_ENDED = "greeting_ended"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class Decision:
    """A change of :class:`Phase`, in Twilio's words (``AnsweredBy``) plus the evidence."""

    phase: Phase
    answered_by: str
    evidence: str
    at_s: float

    @property
    def machine(self) -> bool:
        """A machine answered (its greeting may still be playing)."""
        return self.phase in (Phase.MACHINE, Phase.GREETING_ENDED)


class MachineDetection:
    """Tells an answering machine from a person over the first seconds of a call."""

    def __init__(self, params: AnsweringMachineParams | None = None, *, own: bool = True) -> None:
        """Create the core.

        Args:
            params: Thresholds.
            own: Decide from the audio and words; False: only Twilio's AMD says whether it
                is a machine (the audio still finds the end of its greeting).
        """
        self.params = params or AnsweringMachineParams()
        self.own = own
        self.phase = Phase.LISTENING
        self.decisions: list[Decision] = []
        self._wording = [re.compile(p, re.IGNORECASE) for p in self.params.wording]
        self._first_start: float | None = None
        self._speaking = False
        self._last_end: float | None = None
        self._first_open = False
        self._machine_at = 0.0
        self._beep_on = False
        self._first_words: float | None = None
        self._heard_s = 0.0

    @property
    def active(self) -> bool:
        """Whether the call's audio still matters (listening, or waiting for a greeting's end)."""
        return self.phase in (Phase.LISTENING, Phase.MACHINE)

    @property
    def listening(self) -> bool:
        """Whether it is still undecided whether a person or a machine answered."""
        return self.phase is Phase.LISTENING

    @property
    def holds_turns(self) -> bool:
        """Whether what the other party says may be a machine's greeting, not yet decided.

        True while a greeting could still begin (the first ``greeting_start_s`` of the call)
        and, once the first speech or words came that early, until the verdict: the core's
        own (a pause makes it a person), Twilio's when only Twilio decides (a greeting may
        pause between its sentences), or ``listen_s`` giving up.
        """
        if not self.listening:
            return False
        starts = [t for t in (self._first_start, self._first_words) if t is not None]
        began = min(starts) if starts else self._heard_s
        return began <= self.params.greeting_start_s + _EPS

    # --- events --------------------------------------------------------------------------

    def speech_started(self, at_s: float) -> None:
        """The VAD heard the other party start speaking."""
        self._speaking = True
        if self._first_start is None:
            self._first_start = at_s
            self._first_open = True

    def speech_stopped(self, at_s: float) -> None:
        """The VAD heard them stop (``at_s``: when the speech ended)."""
        if self._speaking:
            self._speaking = False
            self._last_end = at_s

    def transcript(self, at_s: float, text: str) -> Decision | None:
        """A partial or final transcript of what they said."""
        if text and self._first_words is None:
            self._first_words = at_s
        first = self._first_start if self._first_start is not None else at_s  # (before the VAD)
        early = first <= self.params.greeting_start_s
        opening = self._first_open or self._first_start is None
        if not (self.own and self.listening and opening and early and text):
            return None
        if any(pattern.search(text) for pattern in self._wording):
            return self._decide(Phase.MACHINE, "machine_start", "wording", at_s)
        return None

    def beep(self, at_s: float, beep: Beep) -> Decision | None:
        """The beep detector found a beep starting (qualifying) or ending."""
        if not self.active or (self.listening and not self.own):
            return None
        self._beep_on = not beep.ended
        if not beep.ended:
            return self._decide(Phase.MACHINE, "machine_start", "beep", at_s)
        return self._decide(Phase.GREETING_ENDED, "machine_end_beep", "beep", at_s)

    def twilio(self, at_s: float, answered_by: str) -> Decision | None:
        """Twilio's AMD result (``AnsweredBy``) arrived."""
        if self.phase in (Phase.HUMAN, Phase.GREETING_ENDED):
            return None
        if answered_by == "human":
            return self._decide(Phase.HUMAN, "human", "twilio_amd", at_s)
        if answered_by == "machine_start":
            return self._decide(Phase.MACHINE, "machine_start", "twilio_amd", at_s)
        if answered_by.startswith("machine_end") or answered_by == "fax":
            return self._decide(Phase.GREETING_ENDED, answered_by, "twilio_amd", at_s)
        return self._decide(Phase.UNDECIDED, "unknown", "twilio_amd", at_s)

    def tick(self, at_s: float) -> Decision | None:
        """The call's audio has reached ``at_s`` (called once per audio frame)."""
        self._heard_s = at_s
        if self.phase is Phase.MACHINE:
            return self._greeting_over(at_s)
        if not self.listening:
            return None
        p = self.params
        first, last_end = self._first_start, self._last_end
        if self._first_open and first is not None:
            quiet_s = at_s - last_end if last_end is not None else 0.0
            if not self._speaking and last_end is not None and quiet_s + _EPS >= p.pause_s:
                self._first_open = False
                if self.own:
                    return self._decide(Phase.HUMAN, "human", "short_first_utterance", at_s)
            elif (
                self.own
                and first <= p.greeting_start_s
                and at_s - first + _EPS >= p.long_greeting_s
            ):
                return self._decide(Phase.MACHINE, "machine_start", "long_greeting", at_s)
        if first is None and at_s >= p.silence_timeout_s and self.own:
            return self._decide(Phase.UNDECIDED, "unknown", "silence", at_s)
        if at_s >= p.listen_s:
            return self._decide(Phase.UNDECIDED, "unknown", "listen_timeout", at_s)
        return None

    # --- internals -----------------------------------------------------------------------

    def _greeting_over(self, at_s: float) -> Decision | None:
        p = self.params
        if self._beep_on:
            return None
        quiet_since = self._last_end if self._last_end is not None else self._machine_at
        if not self._speaking and at_s - quiet_since + _EPS >= p.end_silence_s:
            return self._decide(Phase.GREETING_ENDED, "machine_end_silence", "silence", at_s)
        if at_s - self._machine_at + _EPS >= p.max_greeting_s:
            return self._decide(Phase.GREETING_ENDED, "machine_end_other", "timeout", at_s)
        return None

    def _decide(
        self, phase: Phase, answered_by: str, evidence: str, at_s: float
    ) -> Decision | None:
        if phase is self.phase:
            return None
        if phase is Phase.MACHINE:
            self._machine_at = at_s
        self.phase = phase
        decision = Decision(phase, answered_by, evidence, at_s)
        self.decisions.append(decision)
        return decision
