"""The commit half of ``TurnEngine``: caller words, commit, revisions, regret, speculation.

Kept apart from ``engine.py`` only for size; read the rules in the engine's module docstring.
"""

from __future__ import annotations

from collections.abc import Callable

from voiceagent.turns import decisions as d
from voiceagent.turns.backchannel import adds_nothing
from voiceagent.turns.conversation import Conversation
from voiceagent.turns.endpointing import EPS, Endpointer
from voiceagent.turns.interruption import Overlap
from voiceagent.turns.options import TurnTaking
from voiceagent.turns.state import (
    CommittedTurn,
    FalseInterruption,
    OpenUtterance,
    Speculation,
    TurnStats,
)
from voiceagent.turns.text import ends_incomplete, normalize
from voiceagent.turns.transcript import Transcript, split_at
from voiceagent.turns.watchdog import Watchdog

REVISION_TRAIL_S = 0.6
"""Words starting this long after the committed voice ended are new speech the VAD missed."""
REVISION_HORIZON_S = 6.0
"""A transcript without audio times revises the last turn only this soon after its commit."""
SOUND_CONFIRM_S = 0.6
"""A sound this fresh may be the caller going on: no commit until the VAD has had its say."""


class CommitRules:
    """Methods of ``TurnEngine`` that decide the caller's turn (mixin; state lives there)."""

    options: TurnTaking
    conversation: Conversation
    endpointer: Endpointer
    watchdog: Watchdog
    stats: TurnStats
    utterance: OpenUtterance
    last: CommittedTurn | None
    overlap: Overlap | None
    false_interruption: FalseInterruption | None
    speaking: bool
    sounding: bool
    agent_audible: bool
    _voice_end: float | None
    _sound_since: float | None
    _agent_pending: bool
    # Provided by TurnEngine:
    _next_id: Callable[[], int]
    _cancel_pending_reply: Callable[[str, list[d.Decision]], None]
    _cancel_speculation: Callable[[str, list[d.Decision]], None]
    _interrupt: Callable[..., None]

    # ------------------------------------------------------------------ words in

    def _caller_resumed(self, now: float, began_at: float, out: list[d.Decision]) -> None:
        """Speech started while the agent is silent: the open turn goes on, or a new one opens."""
        last = self.last
        if last is not None and last.resumed_at is None:
            last.resumed_at = began_at
        u = self.utterance
        if not u.transcript.empty and self._voice_end is not None:
            self.endpointer.learn(began_at - self._voice_end)  # a pause inside the utterance
        self._regret(now, began_at, out, by_voice=True)
        self._open_turn(now, out)
        if u.spec is not None:
            u.blocked_norm = u.spec.norm  # not again on these words while they add to them
            self._cancel_speculation("caller_resumed", out)
        self._voice_end = None
        fi = self.false_interruption
        if fi is not None:
            fi.quiet_since = None
        self.watchdog.caller_active(said_words=False)

    def _route_revision(
        self, now: float, transcript: Transcript, out: list[d.Decision]
    ) -> Transcript | None:
        """Give the committed turn what the caller said before resuming; return the rest."""
        last = self.last
        if last is None or last.keypad:
            return transcript
        if transcript.span is None:
            if last.resumed_at is None and now - last.committed_at <= REVISION_HORIZON_S:
                self._revise(now, transcript, out)
                return None
            return transcript
        boundary = window = last.voice_end + REVISION_TRAIL_S
        if last.resumed_at is not None:
            tolerance = self.options.endpointing.revision_tolerance_s
            boundary = min(boundary, last.resumed_at + tolerance)  # word times are approximate
            window = min(window, last.resumed_at)  # a window begun after they resumed is new
        before, after = split_at(transcript, boundary, window)
        if before is not None:
            self._revise(now, before, out)
        return after

    def _revise(self, now: float, part: Transcript, out: list[d.Decision]) -> None:
        last = self.last
        assert last is not None
        last.transcript.add(part)
        text = last.transcript.text()
        norm = normalize(text)
        if not norm or norm == last.norm:
            return
        last.text, last.norm = text, norm
        self.conversation.revise_user(last.turn_id, text)
        self.stats.revisions += 1
        last.record["revised_text"] = text
        gen: int | None = None
        context = None
        if last.reply_pending:
            self.stats.revisions_before_audible += 1
            gen = self._next_id()
            context = self.conversation.llm_context()
            last.generation = gen
            self.watchdog.reply_requested(now)
            self._agent_pending = True
        elif last.audible_at is not None:
            self.stats.revisions_after_audible += 1
        out.append(d.Revise(last.turn_id, text, gen, context))

    def _add_words(self, now: float, transcript: Transcript, out: list[d.Decision]) -> None:
        u = self.utterance
        self._open_turn(now, out)
        u.transcript.add(transcript)
        norm = normalize(u.transcript.text())
        if norm:
            self._regret(now, now, out, by_voice=False)
            last = self.last
            if last is not None:
                last.wordless_cancel = False  # the continuation has words: answered with them
            fi = self.false_interruption
            if fi is not None and not adds_nothing(u.transcript.text()):
                self.false_interruption = None  # the caller did say something
            self.watchdog.caller_active(said_words=True)
        if u.stability.update(norm, now) and u.spec is not None and u.spec.norm != norm:
            self._cancel_speculation("text_changed", out)

    def _open_turn(self, now: float, out: list[d.Decision]) -> None:
        u = self.utterance
        if not u.opened:
            u.opened = True
            u.began_at = now
            out.append(d.OpenTurn())

    # ------------------------------------------------------------------ the commit

    def _evaluate(self, now: float, out: list[d.Decision]) -> None:
        """Commit the open turn if it is over; otherwise maybe start the LLM early."""
        if self.overlap is not None and not self.overlap.interrupted:
            return  # the caller is talking over the agent: the overlap decides first
        u = self.utterance
        text = u.transcript.text()
        norm = u.stability.norm
        if not norm:
            return
        if self.false_interruption is not None and adds_nothing(text):
            return  # "uh-huh" after a barge-in: the agent may go on; not a turn
        e = self.options.endpointing
        hesitation = ends_incomplete(text)
        if self.speaking:
            since = u.stability.since
            if u.stability.stable(e.stable_partials) and since is not None:
                if now - since >= e.max_speaking_stable_s - EPS:
                    self._commit(now, "speaking_timeout", out)
                    return
                if self.options.speculation.while_speaking and not hesitation:
                    spoken = u.spec_count < self.options.speculation.max_per_utterance
                    if spoken and norm != u.blocked_norm:
                        self._speculate(now, text, norm, out)
            return
        voice_end = self._voice_end if self._voice_end is not None else u.transcript.last_at
        if voice_end is None:
            return
        silent_for = now - voice_end
        need = self.endpointer.required_wait(
            hesitation=hesitation, sounds_unfinished=u.sounds_unfinished
        )
        settled = u.transcript.final or u.stability.stable(e.stable_partials)
        waited_out = silent_for >= e.max_stt_wait_s - EPS
        covered = self.endpointer.covers(u.transcript, voice_end, now, settled=settled)
        evidence = self._voice_end is not None or u.transcript.final
        if not self._fresh_sound(now):  # a loud line may be the caller going on: wait
            if evidence and covered and (settled or waited_out) and silent_for >= need - EPS:
                reason = "final" if u.transcript.final else "stable"
                self._commit(now, reason, out, need, hesitation)
                return
            if silent_for >= e.max_wait_s - EPS:
                self._commit(now, "max_wait", out, need, hesitation)
                return
        self._speculate(now, text, norm, out)

    def _fresh_sound(self, now: float) -> bool:
        """A sound the VAD has not judged yet: loud now, or begun since the voice ended.

        "…my number is | five, five…": the first "five" is over (the line is quiet again)
        before the VAD confirms it as speech, so a quiet line alone does not release the hold.
        """
        since = self._sound_since
        if since is None or now - since >= SOUND_CONFIRM_S - EPS:
            return False
        return self.sounding or (self._voice_end is not None and since > self._voice_end + EPS)

    def _commit_deadlines(self) -> list[float]:
        """The times at which the commit rule could next change its mind."""
        u = self.utterance
        norm = u.stability.norm
        if not norm or (self.overlap is not None and not self.overlap.interrupted):
            return []
        e = self.options.endpointing
        if self.speaking:
            since = u.stability.since
            if u.stability.stable(e.stable_partials) and since is not None:
                return [since + e.max_speaking_stable_s]
            return []
        voice_end = self._voice_end if self._voice_end is not None else u.transcript.last_at
        if voice_end is None:
            return []
        hesitation = ends_incomplete(u.transcript.text())
        need = self.endpointer.required_wait(
            hesitation=hesitation, sounds_unfinished=u.sounds_unfinished
        )
        times = [voice_end + e.max_wait_s, voice_end + e.max_stt_wait_s, voice_end + need]
        if self._sound_since is not None:
            times.append(self._sound_since + SOUND_CONFIRM_S)
        return times

    def _commit(
        self,
        now: float,
        reason: str,
        out: list[d.Decision],
        need: float | None = None,
        hesitation: bool = False,
    ) -> None:
        u = self.utterance
        text = u.transcript.text()
        norm = normalize(text)
        spec = u.spec
        hit = spec is not None and spec.norm == norm and spec.version == self.conversation.version
        if spec is not None and not hit:
            self._cancel_speculation("commit_differs", out)
        turn_id = self._next_id()
        self.conversation.add_user(turn_id, text)
        gen = spec.generation if hit and spec is not None else self._next_id()
        context = None if hit else self.conversation.llm_context()
        out.append(d.Commit(turn_id, text, reason, gen, hit, context, now))
        self.stats.commits += 1
        if hit:
            self.stats.speculative_hits += 1
        voice_end = self._voice_end if self._voice_end is not None else now
        record = {
            "turn_id": turn_id,
            "text": text,
            "reason": reason,
            "speculative_hit": hit,
            "speculation_lead_s": now - spec.started_at if hit and spec is not None else None,
            "silence_s": now - voice_end,
            "required_wait_s": need,
            "hesitation": hesitation,
            "utterance_s": None if u.began_at is None else now - u.began_at,
            "learned_pause_s": self.endpointer.learned_pause_s,
            "end_of_turn_p": u.end_of_turn_p,
            "stt_covered_until": u.transcript.covered_until,
            "voice_end": voice_end,
            "committed_at": now,
            "regret": False,
            "regret_after_s": None,
        }
        self.stats.turns.append(record)
        self.last = CommittedTurn(turn_id, text, norm, u.transcript, voice_end, now, gen, record)
        self.utterance = OpenUtterance()
        self._voice_end = None
        self._agent_pending = True
        self.watchdog.reply_requested(now)

    def _speculate(self, now: float, text: str, norm: str, out: list[d.Decision]) -> None:
        u = self.utterance
        if not self.options.speculation.enabled or u.no_speculation or self.agent_audible:
            return
        spec = u.spec
        if spec is not None and spec.norm == norm and spec.version == self.conversation.version:
            return
        last = self.last
        if last is not None and last.reply_pending:
            return  # the LLM is answering the last turn: a new request waits for the commit
        if spec is not None:
            self._cancel_speculation("replaced", out)
        gen = self._next_id()
        u.spec = Speculation(gen, norm, self.conversation.version, now)
        if self.speaking:
            u.spec_count += 1
        self.stats.speculative_starts += 1
        out.append(d.Speculate(gen, text, self.conversation.llm_context(pending_user_text=text)))

    def _regret(self, now: float, at: float, out: list[d.Decision], *, by_voice: bool) -> None:
        """The caller spoke again before hearing the reply: the same turn goes on.

        Within ``regret_window_s`` of the commit (and ``regret_reaction_s`` of the reply
        becoming audible) it counts as a regretted commit. A reply the caller has not heard
        yet is cancelled whenever they go on, so one utterance never gets two answers.
        """
        last = self.last
        if last is None:
            return
        e = self.options.endpointing
        early = (
            last.regret_open
            and at - last.committed_at <= e.regret_window_s + EPS
            and (last.audible_at is None or at - last.audible_at <= e.regret_reaction_s + EPS)
        )
        if last.regret_open:
            last.regret_open = False
            if early:
                self.stats.regrets += 1
                last.record["regret"] = True
                last.record["regret_after_s"] = at - last.committed_at
            out.append(d.TurnReport(last.turn_id, dict(last.record)))
        if early and self.agent_audible and last.audible_at is not None:
            self._interrupt(now, "regret", out, resume=False)
        elif last.reply_pending:
            self._cancel_pending_reply("caller_went_on", out)
        else:
            return
        if by_voice:
            last.wordless_cancel = True  # answered after all if no words come (a cough)
