"""A scripted call and what the agent must do: the data an eval scenario file describes.

:mod:`voiceagent.eval.scenario` reads these from TOML and checks every field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from voiceagent.emulator.conditions import LineCondition


class LineKind(Enum):
    """How a caller line is spoken, which decides what is measured after it."""

    TURN = "turn"  # the caller waits for the reply
    CONTINUES = "continues"  # a mid-sentence pause: the caller goes on without waiting
    BARGE_IN = "barge_in"  # spoken over the agent's reply, to interrupt it
    BACKCHANNEL = "backchannel"  # "uh-huh" over the agent's reply: must not take the turn

    @property
    def ends_turn(self) -> bool:
        """True when the caller is done after this line and a reply is due."""
        return self in (LineKind.TURN, LineKind.BARGE_IN)


@dataclass(frozen=True)
class Pattern:
    """A word, phrase or ``/regex/`` looked for in the agent's reply (case-insensitive)."""

    source: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, source: str) -> Pattern:
        """Compile ``source``: ``/.../`` as a regex, anything else as whole words.

        Raises:
            re.error: the regular expression does not compile.
            ValueError: the pattern is empty.
        """
        if not source.strip():
            raise ValueError("empty pattern")
        if len(source) >= 2 and source.startswith("/") and source.endswith("/"):
            return cls(source, re.compile(source[1:-1], re.IGNORECASE))
        words = [re.escape(word) for word in source.split()]
        return cls(source, re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE))

    def found_in(self, text: str) -> bool:
        """True when the pattern occurs in ``text``."""
        return self.regex.search(text) is not None


@dataclass(frozen=True)
class Expect:
    """Checks on the agent's reply to one line (or on the greeting); None: not checked."""

    contains: tuple[Pattern, ...] = ()
    contains_any: tuple[Pattern, ...] = ()
    not_contains: tuple[Pattern, ...] = ()
    interrupted: bool | None = None
    within_ms: float | None = None
    max_wer: float | None = None
    no_reply: bool | None = None
    committed: bool | None = None
    tools: tuple[str, ...] = ()
    """Tools the agent must call in answer to the line (``book_appointment``…)."""


@dataclass(frozen=True)
class ScenarioLine:
    """One caller line: what is said, how, and the checks after it.

    The audio is ``audio`` (a WAV), else ``clips`` (human recordings joined: ``asterisk:NAME``),
    else ``say`` spoken by the caller's voice.
    """

    index: int
    say: str
    audio: Path | None
    pause_after_s: float
    kind: LineKind
    over_agent_after_s: float | None
    dtmf: str
    expect: Expect
    clips: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The line's words for reports (the WAV's name when only audio was given)."""
        if self.say:
            return self.say
        if self.audio:
            return self.audio.name
        if self.clips:
            return " ".join(self.clips)
        return f"keypad {self.dtmf}" if self.dtmf else "(silence)"

    @property
    def synthesized(self) -> bool:
        """Whether the caller's voice speaks this line (no recording given)."""
        return self.audio is None and not self.clips and bool(self.say)


@dataclass(frozen=True)
class Scenario:
    """One scripted call."""

    name: str
    description: str
    source: Path
    lines: tuple[ScenarioLine, ...]
    greeting: Expect | None = None
    category: str = ""
    condition: LineCondition | None = None
    """The phone line this call is placed on (a run's ``--condition`` is laid over it)."""
