"""The silence watchdog: never leave a call silent with nobody speaking. Pure, time passed in.

- *Reply*: after a commit, no agent audio within ``reply_timeout_s`` (the caller not speaking)
  means the generation failed or stalled: re-run it once, then speak ``fallback_text``. A
  provider error shortens the wait to ``error_grace_s``.
- *Idle*: nobody has spoken for ``idle_timeout_s`` after the agent finished: re-prompt, at
  most ``max_reprompts`` times in a row until the caller says something.

Pipecat's ``UserIdleController`` covers only the idle half and runs an asyncio timer of its
own; here both halves are deadlines of the turn engine, on the call's injectable clock.
"""

from __future__ import annotations

from enum import Enum

from voiceagent.turns.options import Watchdog as WatchdogOptions

EPS = 1e-6


class WatchdogAction(Enum):
    """What a due watchdog deadline asks for."""

    RERUN = "rerun"
    FALLBACK = "fallback"
    REPROMPT = "reprompt"


class Watchdog:
    """Reply and idle deadlines of one call."""

    def __init__(self, options: WatchdogOptions | None = None) -> None:
        self.options = options or WatchdogOptions()
        self.reply_due: float | None = None
        self.idle_due: float | None = None
        self._attempt = 0
        self._reprompts = 0
        self._agent_has_spoken = False

    def reply_requested(self, now: float, *, rerun: bool = False) -> None:
        """A reply was asked of the LLM (a commit, a re-run, a follow-up)."""
        self.reply_due = now + self.options.reply_timeout_s
        if not rerun:
            self._attempt = 0
        self.idle_due = None

    def agent_audible(self) -> None:
        """The caller hears the agent: the reply came; nobody is idle."""
        self._agent_has_spoken = True
        self.reply_due = None
        self.idle_due = None

    def agent_silent(self, now: float) -> None:
        """The agent stopped speaking: idle time starts."""
        if self.reply_due is None and self._reprompts < self.options.max_reprompts:
            self.idle_due = now + self.options.idle_timeout_s

    def caller_active(self, *, said_words: bool) -> None:
        """The caller is speaking (or typing): no re-prompt; a reply is not late meanwhile."""
        self.idle_due = None
        if said_words:
            self._reprompts = 0

    def reply_cancelled(self) -> None:
        """The awaited reply was cancelled (the caller went on): nothing is late."""
        self.reply_due = None

    def error(self, now: float) -> None:
        """A provider error while a reply is awaited: act sooner."""
        if self.reply_due is not None:
            self.reply_due = min(self.reply_due, now + self.options.error_grace_s)

    def deadline(self) -> float | None:
        """The next due time, if any."""
        times = [t for t in (self.reply_due, self.idle_due) if t is not None]
        return min(times) if times else None

    def tick(self, now: float, *, caller_speaking: bool) -> WatchdogAction | None:
        """Time passed: what to do, if a deadline is due."""
        o = self.options
        if self.reply_due is not None and now + EPS >= self.reply_due:
            if caller_speaking:
                self.reply_due = now + o.reply_timeout_s
                return None
            if self._attempt == 0 and o.rerun_llm:
                self._attempt = 1
                self.reply_due = now + o.reply_timeout_s
                return WatchdogAction.RERUN
            self._attempt = 2
            self.reply_due = None
            return WatchdogAction.FALLBACK
        if self.idle_due is not None and now + EPS >= self.idle_due:
            self.idle_due = None
            if caller_speaking or self._reprompts >= o.max_reprompts or not self._agent_has_spoken:
                return None
            self._reprompts += 1
            return WatchdogAction.REPROMPT
        return None
