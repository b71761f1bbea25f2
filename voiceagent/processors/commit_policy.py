"""When is the caller done? The pure decision engine behind the StabilityCommitRouter.

``CommitPolicy`` takes caller events with their times (partials, finals, VAD start/stop,
agent speaking) and returns decisions (speculate, cancel the speculation, commit, regret).
It never sleeps and owns no timer: after each event the owner asks ``next_deadline()`` and
calls ``on_tick(now)`` when that time comes. That keeps every timing rule testable with
plain numbers.

Rules (see ``RouterParams``):

- *Settled* text: the last ``stable_partials`` hypotheses agree on the normalized text for
  at least ``min_stable_s``, or the STT sent a final and nothing newer.
- *Commit*: settled text and the caller silent (VAD stopped) for the required wait: the
  learned pause (EMA of the caller's own mid-utterance pauses, clamped to
  ``[min_silence_s, max_silence_s]``), plus ``hesitation_extra_s`` when the text sounds
  unfinished, or ``acoustic_extra_s`` when only the end-of-turn model (``on_end_of_turn``)
  hears an unfinished turn, never more than ``max_wait_s``. After ``max_wait_s`` of silence
  whatever text there is gets committed, settled or not, so the agent never hangs.
- *Speculate* while the caller speaks on stable, complete-sounding text (at most
  ``max_speculations`` per utterance), and at once on the latest text when the caller goes
  silent; cancel when the caller resumes or the text changes.
- *Regret*: the caller resumes within ``regret_window_s`` of a commit (before the agent
  could have been heard). Once the continuation has words and the agent is not speaking yet,
  the committed turn's reply is cancelled; the next commit merges into the same message.
"""

from __future__ import annotations

from voiceagent.processors.router_params import RouterParams
from voiceagent.processors.text_normalize import UtteranceText, ends_incomplete, normalize
from voiceagent.processors.turn_decisions import (
    CancelReply,
    CancelSpeculation,
    Commit,
    Decision,
    Regret,
    RegretWindowClosed,
    Rerun,
    Speculate,
)

__all__ = [
    "CancelReply",
    "CancelSpeculation",
    "Commit",
    "CommitPolicy",
    "Decision",
    "Regret",
    "RegretWindowClosed",
    "Rerun",
    "RouterParams",
    "Speculate",
]

_EPS = 1e-6


class CommitPolicy:
    """Turn-end decisions for one caller; pure apart from the times it is given."""

    def __init__(self, params: RouterParams | None = None) -> None:
        self.params = params or RouterParams()
        self._transcript = UtteranceText()
        self._norm = ""
        self._run_len = 0
        self._run_since: float | None = None
        self._final_latest = False
        self._speaking = False
        self._silent_since: float | None = None
        self._vad_seen = False
        self._started_at: float | None = None
        self._last_stop: float | None = None
        self._spec_norm: str | None = None
        self._spec_count = 0
        self._blocked_norm: str | None = None
        self._learned_pause: float | None = None
        self._agent_speaking = False
        self._agent_started_at: float | None = None
        self._commit_at: float | None = None
        self._commit_stop: float | None = None
        self._regret_open = False
        self._cancel_armed = False
        self._wordless_cancel = False
        self._eot_unfinished = False  # the end-of-turn model's verdict on the current silence
        self._eot_p: float | None = None

    @property
    def learned_pause_s(self) -> float | None:
        """EMA of the caller's mid-utterance pauses (VAD stop→start), if any was seen."""
        return self._learned_pause

    def required_wait(self, hesitation: bool) -> float:
        """Seconds of caller silence needed before committing settled text."""
        p = self.params
        base = p.min_silence_s
        if p.learn_pause and self._learned_pause is not None:
            learned = self._learned_pause + p.pause_margin_s
            base = min(max(learned, p.min_silence_s), p.max_silence_s)
        if hesitation:
            base += p.hesitation_extra_s
        elif self._eot_unfinished:
            base += p.acoustic_extra_s
        return min(base, p.max_wait_s)

    def on_partial(self, text: str, now: float) -> list[Decision]:
        """An interim hypothesis of the open STT segment."""
        self._transcript.partial(text)
        self._final_latest = False
        return self._on_text(now)

    def on_final(self, text: str, now: float) -> list[Decision]:
        """A final transcript closing the open STT segment."""
        self._transcript.final(text)
        self._final_latest = bool(self._transcript.text())
        return self._on_text(now)

    def on_caller_started(self, now: float) -> list[Decision]:
        """VAD: the caller started speaking."""
        out: list[Decision] = []
        if self._last_stop is not None and self._norm:
            self._learn(now - self._last_stop)
        self._last_stop = None
        self._check_regret(now, out, resumed_by_vad=True)
        self._speaking = True
        self._vad_seen = True
        self._silent_since = None
        self._eot_unfinished = False
        if self._started_at is None:
            self._started_at = now
        if self._spec_norm is not None:
            # Not again on the same words while the caller talks: they are adding to them.
            self._blocked_norm = self._spec_norm
            out.append(self._cancel_speculation("caller_resumed"))
        return out

    def on_caller_stopped(self, now: float) -> list[Decision]:
        """VAD: the caller stopped speaking."""
        self._speaking = False
        self._vad_seen = True
        self._silent_since = now
        self._last_stop = now
        self._blocked_norm = None
        if not self._norm:
            self._started_at = None  # noise, no words: the utterance has not begun
            if self._wordless_cancel:  # the reply was cancelled for a cough: answer after all
                self._wordless_cancel = False
                return [Rerun()]
        return self._evaluate(now)

    def on_end_of_turn(
        self, complete: bool, probability: float | None, now: float
    ) -> list[Decision]:
        """The end-of-turn model's verdict on the caller's audio at the last VAD stop."""
        if self._speaking:
            return []  # stale: the caller resumed
        self._eot_unfinished = not complete
        self._eot_p = probability
        return self._evaluate(now)

    def on_agent_started(self, now: float) -> list[Decision]:
        """The caller started hearing the agent."""
        self._agent_speaking = True
        self._agent_started_at = now
        self._cancel_armed = False
        return []

    def on_agent_stopped(self, now: float) -> list[Decision]:
        """The agent's audio stopped playing."""
        self._agent_speaking = False
        return []

    def on_interruption(self) -> None:
        """A barge-in flushed the LLM and its output: any speculation is gone."""
        self._spec_norm = None
        self._cancel_armed = False

    def on_tick(self, now: float) -> list[Decision]:
        """Time passed (the deadline from ``next_deadline`` came)."""
        out: list[Decision] = []
        closes = None if self._commit_at is None else self._commit_at + self.params.regret_window_s
        if self._regret_open and closes is not None and now >= closes - _EPS:
            self._regret_open = False
            out.append(RegretWindowClosed())
        out.extend(self._evaluate(now))
        return out

    def _on_text(self, now: float) -> list[Decision]:
        out: list[Decision] = []
        norm = normalize(self._transcript.text())
        if norm and self._started_at is None:
            self._started_at = now
        if norm:
            self._check_regret(now, out, resumed_by_vad=False)
            if self._cancel_armed and not self._agent_speaking:
                out.append(CancelReply())
            self._cancel_armed = False
            self._wordless_cancel = False  # a real continuation: the merged turn commits later
        if norm == self._norm:
            if norm:
                self._run_len += 1
        else:
            self._norm = norm
            self._run_len = 1 if norm else 0
            self._run_since = now if norm else None
            if self._spec_norm is not None:
                out.append(self._cancel_speculation("text_changed"))
        out.extend(self._evaluate(now))
        return out

    def _learn(self, gap: float) -> None:
        p = self.params
        if not p.learn_pause or gap <= 0 or gap > p.max_wait_s:
            return
        if self._learned_pause is None:
            self._learned_pause = gap
        else:
            self._learned_pause = p.pause_alpha * gap + (1 - p.pause_alpha) * self._learned_pause

    def _check_regret(self, now: float, out: list[Decision], *, resumed_by_vad: bool) -> None:
        if not self._regret_open or self._commit_at is None:
            return
        after = now - self._commit_at
        if after > self.params.regret_window_s + _EPS:
            return
        self._regret_open = False
        heard_for = None if self._agent_started_at is None else now - self._agent_started_at
        if heard_for is not None and heard_for > self.params.regret_reaction_s:
            out.append(RegretWindowClosed())  # answering what the agent said: not a regret
            return
        if resumed_by_vad and self._commit_stop is not None:
            self._learn(now - self._commit_stop)
        out.append(Regret(after_s=after))
        if resumed_by_vad and not self._agent_speaking:
            # Cancel at once: the first words of the continuation arrive only after the STT's
            # next partial, by which time the reply would be talking over the caller. If no
            # words come (a cough), ``Rerun`` answers the committed turn at the VAD stop.
            out.append(CancelReply())
            self._wordless_cancel = True
        else:
            self._cancel_armed = not self._agent_speaking

    def _cancel_speculation(self, reason: str) -> CancelSpeculation:
        self._spec_norm = None
        return CancelSpeculation(reason)

    def _settled(self, now: float) -> bool:
        if not self._norm:
            return False
        if self._final_latest:
            return True
        return self._stable() and now >= self._stable_at() - _EPS

    def _stable(self) -> bool:
        return bool(self._norm) and self._run_len >= self.params.stable_partials

    def _stable_at(self) -> float:
        assert self._run_since is not None
        return self._run_since + self.params.min_stable_s

    def _stuck(self, now: float) -> bool:
        """Stable text while VAD still reports speech for too long (noise keeps VAD open)."""
        since = self._run_since
        if not self._stable() or since is None:
            return False
        return now - since >= self.params.max_speaking_stable_s - _EPS

    def _silence_ref(self) -> float | None:
        """When the caller's silence began (VAD stop; the last text change without VAD)."""
        if self._speaking:
            return None
        if self._silent_since is not None:
            return self._silent_since
        return None if self._vad_seen else self._run_since

    def _evaluate(self, now: float) -> list[Decision]:
        out: list[Decision] = []
        p = self.params
        ref = self._silence_ref()
        if self._norm and ref is not None:
            text = self._transcript.text()
            hesitation = ends_incomplete(text)
            need = self.required_wait(hesitation)
            silent_for = now - ref
            # Without any VAD segment (speech too short or quiet for the VAD) text stability
            # alone is weak evidence of silence: only a final (or the hard bound) commits.
            evidence = self._vad_seen or self._final_latest
            if evidence and self._settled(now) and silent_for >= need - _EPS:
                reason = "final" if self._final_latest else "stable"
                out.append(self._commit(now, reason, ref, need, hesitation))
                return out
            if silent_for >= p.max_wait_s - _EPS:
                out.append(self._commit(now, "max_wait", ref, need, hesitation))
                return out
        elif self._speaking and self._stuck(now):
            hesitation = ends_incomplete(self._transcript.text())
            out.append(self._commit(now, "speaking_timeout", None, 0.0, hesitation))
            return out
        # While the caller speaks, speculate only on stable, complete-sounding text (a prefix
        # like "I'd like to" wastes a request); once silent, start at once on the latest text
        # (the final usually confirms it), so the budget spent mid-utterance never costs the
        # speculation that matters.
        if (
            p.speculate
            and (self._stable() or self._final_latest or (self._norm and not self._speaking))
            and self._spec_norm != self._norm
            and (
                not self._speaking
                or (
                    self._spec_count < p.max_speculations
                    and not ends_incomplete(self._transcript.text())
                )
            )
            and not (self._speaking and self._norm == self._blocked_norm)
        ):
            self._spec_norm = self._norm
            self._spec_count += 1
            out.append(Speculate(self._transcript.text(), self._norm))
        return out

    def _commit(
        self, now: float, reason: str, ref: float | None, need: float, hesitation: bool
    ) -> Commit:
        text = self._transcript.text()
        decision = Commit(
            text=text,
            norm=self._norm,
            reason=reason,
            wait_s=None if ref is None or not self._vad_seen else now - ref,
            required_wait_s=need,
            hesitation=hesitation,
            utterance_s=None if self._started_at is None else now - self._started_at,
            learned_pause_s=self._learned_pause,
            end_of_turn_p=self._eot_p,
        )
        self._transcript.commit()
        self._norm = ""
        self._run_len = 0
        self._run_since = None
        self._final_latest = False
        self._spec_norm = None
        self._spec_count = 0
        self._blocked_norm = None
        self._eot_unfinished = False
        self._eot_p = None
        self._commit_at = now
        self._commit_stop = self._silent_since
        self._silent_since = None
        self._last_stop = None
        self._vad_seen = False
        self._started_at = None
        self._agent_started_at = None
        self._regret_open = self.params.regret_window_s > 0
        self._cancel_armed = False
        self._wordless_cancel = False
        return decision

    def next_deadline(self, now: float) -> float | None:
        """The next time ``on_tick`` could decide something, or None."""
        p = self.params
        times: list[float] = []
        if self._regret_open and self._commit_at is not None:
            times.append(self._commit_at + p.regret_window_s)
        ref = self._silence_ref()
        if self._norm and ref is not None:
            times.append(ref + p.max_wait_s)
            if self._final_latest or self._stable():
                need = self.required_wait(ends_incomplete(self._transcript.text()))
                at = ref + need
                if not self._final_latest:
                    at = max(at, self._stable_at())
                times.append(at)
        elif self._speaking and self._stable() and self._run_since is not None:
            times.append(self._run_since + p.max_speaking_stable_s)
        future = [t for t in times if t > now + _EPS]
        return min(future) if future else None
