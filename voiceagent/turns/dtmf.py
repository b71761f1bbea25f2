"""Keypad entries: DTMF digits gathered into one entry, ended by a terminator or a quiet keypad.

Pure and clock-free: the turn engine feeds each digit with its time and asks for the entry's
deadline. Pipecat's ``DTMFAggregator`` does the same job but runs its own asyncio timer (not
the call's injectable clock, so its timing cannot be tested without sleeping) and emits a
``TranscriptionFrame`` that turn logic would take for caller speech; here an entry is its own
event, so it is never merged into spoken words and never waits for a speech commit.
"""

from __future__ import annotations

from voiceagent.turns.options import Dtmf


class KeypadEntry:
    """Digits pressed since the last entry ended."""

    def __init__(self, options: Dtmf | None = None) -> None:
        self.options = options or Dtmf()
        self._digits = ""
        self._last_at: float | None = None

    @property
    def pending(self) -> str:
        """Digits pressed so far in the open entry."""
        return self._digits

    def press(self, digit: str, now: float) -> str | None:
        """A key press; returns the finished entry when this press ends it."""
        terminator = self.options.terminator
        if terminator and digit == terminator:
            entry = self._digits or digit
            self._reset()
            return entry
        self._digits += digit
        self._last_at = now
        if len(self._digits) >= self.options.max_digits:
            entry = self._digits
            self._reset()
            return entry
        return None

    def deadline(self) -> float | None:
        """When a quiet keypad ends the open entry (None: no entry open)."""
        if not self._digits or self._last_at is None:
            return None
        return self._last_at + self.options.inter_digit_timeout_s

    def tick(self, now: float) -> str | None:
        """Time passed: the entry, if the keypad has been quiet long enough."""
        due = self.deadline()
        if due is None or now + 1e-9 < due:
            return None
        entry = self._digits
        self._reset()
        return entry

    def describe(self, entry: str) -> str:
        """The entry as a caller message for the LLM ("The caller pressed 4 2 on the keypad.")."""
        return self.options.template.format(digits=" ".join(entry))

    def _reset(self) -> None:
        self._digits = ""
        self._last_at = None
