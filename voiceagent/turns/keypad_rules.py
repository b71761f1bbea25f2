"""The turn engine's keypad rules: a digit stops the agent; a finished entry is a caller turn."""

from __future__ import annotations

from collections.abc import Callable

from voiceagent.turns import decisions as d
from voiceagent.turns.conversation import Conversation
from voiceagent.turns.dtmf import KeypadEntry
from voiceagent.turns.options import TurnTaking
from voiceagent.turns.state import CommittedTurn, TurnStats
from voiceagent.turns.text import normalize
from voiceagent.turns.transcript import TurnTranscript
from voiceagent.turns.watchdog import Watchdog


class KeypadRules:
    """Methods of ``TurnEngine`` for the caller's keypad (mixin; state lives there)."""

    options: TurnTaking
    conversation: Conversation
    keypad: KeypadEntry
    watchdog: Watchdog
    stats: TurnStats
    last: CommittedTurn | None
    agent_audible: bool
    _agent_pending: bool
    # Provided by TurnEngine and BargeInRules:
    _interrupt: Callable[..., None]
    _cancel_pending_reply: Callable[[str, list[d.Decision]], None]
    _cancel_speculation: Callable[[str, list[d.Decision]], None]
    _finish: Callable[[float, list[d.Decision]], list[d.Decision]]
    _next_id: Callable[[], int]

    def dtmf(self, now: float, digit: str) -> list[d.Decision]:
        """A keypad digit: it stops the agent; a finished entry is handed to the bot."""
        out: list[d.Decision] = []
        if not self.options.dtmf.enabled:
            return out
        if self.agent_audible:
            self._interrupt(now, "dtmf", out)
        else:
            self._cancel_pending_reply("dtmf", out)
        self._cancel_speculation("dtmf", out)
        self.watchdog.caller_active(said_words=True)
        entry = self.keypad.press(digit, now)
        if entry is not None:
            self.stats.keypad_entries += 1
            out.append(d.KeypadEntered(entry))
        return self._finish(now, out)

    def keypad_turn(self, now: float, digits: str) -> list[d.Decision]:
        """The bot left a keypad entry to the LLM: it becomes a caller turn."""
        out: list[d.Decision] = []
        turn_id = self._next_id()
        text = self.keypad.describe(digits)
        self.conversation.add_user(turn_id, text)
        gen = self._next_id()
        out.append(
            d.Commit(turn_id, text, "dtmf", gen, False, self.conversation.llm_context(), now)
        )
        self._agent_pending = True
        self.stats.commits += 1
        record = {"turn_id": turn_id, "text": text, "reason": "dtmf", "committed_at": now}
        self.stats.turns.append(record)
        self.last = CommittedTurn(
            turn_id,
            text,
            normalize(text),
            TurnTranscript(),
            now,
            now,
            gen,
            record,
            regret_open=False,
            keypad=True,
        )
        self.watchdog.reply_requested(now)
        return self._finish(now, out)
