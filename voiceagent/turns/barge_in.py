"""The barge-in half of ``TurnEngine``: caller sound over the agent, pause, interrupt, resume.

Kept apart from ``engine.py`` only for size; read the rules in the engine's module docstring
and in ``voiceagent.turns.interruption``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from voiceagent.turns import decisions as d
from voiceagent.turns.backchannel import adds_nothing
from voiceagent.turns.endpointing import EPS
from voiceagent.turns.interruption import InterruptionJudge, Overlap, latest_transcripts
from voiceagent.turns.options import TurnTaking
from voiceagent.turns.state import (
    CommittedTurn,
    FalseInterruption,
    OpenUtterance,
    TurnStats,
)
from voiceagent.turns.transcript import Transcript
from voiceagent.turns.watchdog import Watchdog

LATE_WORDS_SLACK_S = 0.3
"""STT word times and the energy detector's onset/quiet differ by this much."""


class BargeInRules:
    """Methods of ``TurnEngine`` for speech over the agent (mixin; state lives there)."""

    options: TurnTaking
    judge: InterruptionJudge
    watchdog: Watchdog
    stats: TurnStats
    utterance: OpenUtterance
    last: CommittedTurn | None
    overlap: Overlap | None
    let_go: deque[tuple[float, float]]
    false_interruption: FalseInterruption | None
    speaking: bool
    agent_audible: bool
    paused: bool
    _hold_until: float | None
    _audible_since: float | None
    _agent_pending: bool
    # Provided by TurnEngine:
    _add_words: Callable[[float, Transcript, list[d.Decision]], None]

    def _want_pause(self, now: float) -> bool:
        ov = self.overlap
        if self.agent_audible:
            if ov is None or ov.interrupted or ov.echo:
                return False
            if not self.options.interruption.pause_on_speech:
                return False
            due = self.judge.resume_due(ov)
            return due is None or now + EPS < due
        return self._hold_until is not None and now + EPS < self._hold_until

    def _judge_overlap(self, now: float, out: list[d.Decision]) -> None:
        """Interrupt on the duration rule, or let a quiet overlap go for good."""
        ov = self.overlap
        if ov is None or ov.interrupted:
            return
        if self.judge.takes_floor(ov, now):
            self._interrupt(now, "duration", out)
            return
        over = self.judge.over_at(ov)
        if over is not None and now + EPS >= over:
            self.overlap = None
            self._let_go(ov, now)

    def _let_go(self, ov: Overlap, now: float) -> None:
        """Speech over the agent did not take the floor; remember its audio for late words."""
        self._count_ignored(ov)
        self.let_go.append((ov.onset, ov.quiet_since if ov.quiet_since is not None else now))

    def _late_overlap_words(
        self, now: float, transcript: Transcript, out: list[d.Decision]
    ) -> bool:
        """Words of speech over the agent that was already let go (a slow STT); True: handled.

        Their audio times place them: a backchannel or a hum stays what it was ("Right." whose
        final arrives 1.7 s later is still not a turn); words that take the floor interrupt now
        if the agent is still talking, and are the caller's turn either way.
        """
        span = transcript.span
        if span is None or not self.let_go:
            return False
        start, end = (
            (span.words[0].start, span.words[-1].end) if span.words else (span.start, span.end)
        )
        slack = LATE_WORDS_SLACK_S
        if not any(a - slack <= start and end <= b + slack for a, b in self.let_go):
            return False
        if self.judge.words_take_floor(transcript.text) is not True:
            return True
        if self.agent_audible:
            self._interrupt(now, "late_words", out)
        self._add_words(now, transcript, out)
        return True

    def _new_overlap(self, onset: float, *, sounding: bool) -> Overlap:
        ov = Overlap(onset, onset, sounding=sounding, speech=self.speaking, echo=self._echo(onset))
        if sounding:
            ov.sound_since = onset
        else:
            ov.quiet_since = onset  # speech the energy detector missed: nothing to pause for
        return ov

    def _echo(self, onset: float) -> bool:
        since = self._audible_since
        guard = self.options.interruption.echo_guard_s
        return since is not None and since - EPS <= onset < since + guard - EPS

    def _interrupt(
        self, now: float, reason: str, out: list[d.Decision], *, resume: bool = True
    ) -> None:
        out.append(d.Interrupt(reason))
        self.stats.interrupted(reason)
        self.agent_audible = False
        self._agent_pending = False
        self._hold_until = None
        self.paused = False  # the output forgets its pause with the queue it flushed
        last = self.last
        if last is not None and last.reply_pending:
            last.reply_pending = False
        self.watchdog.reply_cancelled()
        ov, self.overlap = self.overlap, None
        quiet = None
        if ov is not None:
            ov.interrupted = True
            quiet = ov.quiet_since if not ov.sounding else None
        self.false_interruption = FalseInterruption(quiet_since=quiet) if resume else None
        if ov is not None:
            for t in latest_transcripts(ov.held):
                self._add_words(now, t, out)

    def _resume_if_due(self, out: list[d.Decision]) -> None:
        fi = self.false_interruption
        if fi is None or not fi.due or fi.text is None:
            return
        self.false_interruption = None
        u = self.utterance
        if not u.transcript.empty and not adds_nothing(u.transcript.text()):
            return  # the caller did say something: their turn is answered instead
        self.utterance = OpenUtterance()
        if fi.text and self.options.interruption.resume_false_interruption:
            self.stats.resumes += 1
            self._agent_pending = True
            out.append(d.Say(fi.text, True, "resume"))

    def _count_ignored(self, ov: Overlap) -> None:
        if ov.backchannel:
            self.stats.backchannels_ignored += 1
        else:
            self.stats.noises_ignored += 1
