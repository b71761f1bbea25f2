"""The turn engine: when the agent replies, stops, waits, or speaks again. Pure; time passed in.

Events in, with their times on the call clock (``TurnProcessor`` translates frames): the caller's
sound (energy onset/offset), speech start/stop (VAD), transcripts with the audio they cover,
keypad digits; the agent becoming audible/silent and what the caller heard of it; tool results;
clock ticks. Decisions out (``voiceagent.turns.decisions``). The rules, in one place:

**The caller's turn ends** (commit) when the newest transcript covers the caller's speech (the
STT has caught up: ``Endpointer.covers``), its text has settled (a final, or agreeing
partials), and the caller has been silent for the required wait (their learned pause, longer
when the words sound unfinished); after ``max_wait_s`` of silence whatever there is commits.
**The LLM starts early**: on stable, complete-sounding words mid-utterance and at once when
the caller goes silent; its reply is held (pipecat's speculation gate) and released by the
commit when the committed words and the conversation are what it was started on.
**One utterance, one answer**: a transcript of audio the committed turn covered (a late final,
words the last interim lacked) *revises* that turn; before its reply is audible the reply is
regenerated on the revised words, after that only the conversation is corrected. The caller
resuming within the regret window continues the same turn: the reply, not yet audible, is
cancelled and the continuation is answered together with it.
**Barge-in**: caller sound over the audible agent pauses its audio; sustained speech or words
that take the floor interrupt it (``InterruptionJudge``); a backchannel or a noise resumes it.
After an interruption with no words, the agent says what the caller did not hear.
**Keypad entries** are caller turns; any digit stops the agent. **The watchdog** re-runs a
stalled reply and re-prompts a silent caller (re-prompts stay out of the conversation).
"""

from __future__ import annotations

from collections import deque

from voiceagent.turns import decisions as d
from voiceagent.turns.barge_in import BargeInRules
from voiceagent.turns.commit import CommitRules
from voiceagent.turns.conversation import Conversation, ToolExchange
from voiceagent.turns.dtmf import KeypadEntry
from voiceagent.turns.endpointing import EPS, Endpointer
from voiceagent.turns.interruption import InterruptionJudge, Overlap, latest_transcripts
from voiceagent.turns.keypad_rules import KeypadRules
from voiceagent.turns.options import TurnTaking
from voiceagent.turns.state import CommittedTurn, FalseInterruption, OpenUtterance, TurnStats
from voiceagent.turns.transcript import Transcript
from voiceagent.turns.watchdog import Watchdog, WatchdogAction

MAX_SOUND_LEAD_S = 0.8
"""An energy onset this long before a VAD start is the same speech; earlier is another sound."""
REVISION_TRAIL_S = 0.6
"""Words starting this long after the committed voice ended are new speech the VAD missed."""
REVISION_HORIZON_S = 6.0
"""A transcript without audio times revises the last turn only this soon after its commit."""


class TurnEngine(CommitRules, BargeInRules, KeypadRules):
    """The decision core of one call (see the module docstring)."""

    def __init__(
        self, options: TurnTaking | None = None, conversation: Conversation | None = None
    ) -> None:
        self.options = options or TurnTaking()
        self.conversation = conversation or Conversation()
        self.endpointer = Endpointer(self.options.endpointing)
        self.judge = InterruptionJudge(self.options.interruption)
        self.keypad = KeypadEntry(self.options.dtmf)
        self.watchdog = Watchdog(self.options.watchdog)
        self.stats = TurnStats()
        self.utterance = OpenUtterance()
        self.last: CommittedTurn | None = None
        self.overlap: Overlap | None = None
        self.let_go: deque[tuple[float, float]] = deque(maxlen=4)  # overlaps that were not turns
        self.false_interruption: FalseInterruption | None = None
        self.speaking = False  # the caller, per VAD
        self.sounding = False  # the caller's line, per energy
        self.agent_audible = False
        self.paused = False
        self._sound_since: float | None = None
        self._voice_end: float | None = None
        self._hold_until: float | None = None
        self._audible_since: float | None = None
        self._agent_pending = False  # a reply or fixed words are on their way, not audible yet
        self._ids = 0

    # ------------------------------------------------------------------ caller events

    def caller_sound(
        self, now: float, sounding: bool, *, at: float | None = None
    ) -> list[d.Decision]:
        """The caller's line turned loud (``sounding``) or quiet at ``at`` (default ``now``)."""
        out: list[d.Decision] = []
        at = now if at is None else min(at, now)
        self.sounding = sounding
        if sounding:
            self._sound_since = at
            hold = self.options.interruption.floor_hold_max_s
            pending = self._agent_pending and not self.agent_audible
            self._hold_until = now + hold if pending and hold > 0 else None
        else:
            self._hold_until = None
        ov = self.overlap
        if ov is not None:
            ov.sound(sounding, at, self.options.interruption.join_gap_s)
            self._judge_overlap(now, out)  # a run resumed after a comma may be long enough
        elif sounding and self.agent_audible and self.options.interruption.enabled:
            self.overlap = self._new_overlap(at, sounding=True)
        return self._finish(now, out)

    def speech_started(self, now: float, began_at: float) -> list[d.Decision]:
        """VAD: speech confirmed, which began at ``began_at``."""
        out: list[d.Decision] = []
        since = self._sound_since
        if since is not None and self.sounding and began_at - MAX_SOUND_LEAD_S <= since < began_at:
            began_at = since  # the energy onset of the same sound times it better
        self.speaking = True
        last = self.last
        reaction = self.options.endpointing.regret_reaction_s
        just_audible = (
            last is not None
            and last.regret_open
            and last.audible_at is not None
            and began_at - last.audible_at <= reaction + EPS
        )
        if self.agent_audible and self.options.interruption.enabled and not just_audible:
            ov = self.overlap
            if ov is None:
                ov = self.overlap = self._new_overlap(began_at, sounding=self.sounding)
            ov.speech = True
            self._judge_overlap(now, out)
        else:
            self.overlap = None  # resuming as the reply began: still their turn, not a barge-in
            self._caller_resumed(now, began_at, out)
        return self._finish(now, out)

    def speech_stopped(self, now: float, ended_at: float) -> list[d.Decision]:
        """VAD: speech stopped; the voice ended at ``ended_at``."""
        out: list[d.Decision] = []
        self.speaking = False
        self._voice_end = ended_at
        fi = self.false_interruption
        if fi is not None:
            fi.quiet_since = ended_at
        last = self.last
        quiet = self.overlap is None and self.utterance.transcript.empty
        if quiet and last is not None and last.wordless_cancel:
            last.wordless_cancel = False  # a cough after the commit: answer it after all
            self._reply(now, "wordless_resume", out)
            self.stats.reruns += 1
        return self._finish(now, out)

    def transcript(self, now: float, transcript: Transcript) -> list[d.Decision]:
        """A partial or final transcript of the caller."""
        out: list[d.Decision] = []
        rest = self._route_revision(now, transcript, out)
        if rest is not None and rest.text.strip():
            ov = self.overlap
            if ov is not None and not ov.interrupted:
                if self.judge.hear(ov, rest):
                    self._interrupt(now, "words", out)
            elif not self._late_overlap_words(now, rest, out):
                self._add_words(now, rest, out)
        return self._finish(now, out)

    def end_of_turn(
        self, now: float, complete: bool, probability: float | None
    ) -> list[d.Decision]:
        """The end-of-turn model's verdict on the caller's audio at the last speech stop."""
        if self.speaking:
            return []
        self.utterance.sounds_unfinished = not complete
        self.utterance.end_of_turn_p = probability
        return self._finish(now, [])

    # ------------------------------------------------------------------ agent events

    def agent_started(self, now: float) -> list[d.Decision]:
        """The caller started hearing the agent."""
        out: list[d.Decision] = []
        self.agent_audible = True
        self._audible_since = now
        self._hold_until = None
        last = self.last
        if last is not None and last.reply_pending:
            last.reply_pending = False
            last.audible_at = now
        self.watchdog.agent_audible()
        self.false_interruption = None  # the agent talks again: nothing to resume
        self._agent_pending = False
        if (self.sounding or self.speaking) and self.options.interruption.enabled:
            self.overlap = self._new_overlap(now, sounding=self.sounding)
            self.overlap.speech = self.speaking
            self.overlap.echo = False
        return self._finish(now, out)

    def agent_stopped(self, now: float) -> list[d.Decision]:
        """The agent's audio stopped playing."""
        out: list[d.Decision] = []
        self.agent_audible = False
        ov = self.overlap
        if ov is not None and not ov.interrupted:
            self.overlap = None
            if self.judge.answers_agent(ov, now):
                for t in latest_transcripts(ov.held):  # "Yeah." over the end of a question
                    self._add_words(now, t, out)  # (words still to come are a turn too)
            else:
                self._let_go(ov, now)
        self.watchdog.agent_silent(now)
        return self._finish(now, out)

    def agent_heard(
        self, now: float, text: str, *, interrupted: bool, unheard: str, in_context: bool
    ) -> list[d.Decision]:
        """What the caller heard of one agent turn (from the carrier's playback marks)."""
        out: list[d.Decision] = []
        if in_context:
            self.conversation.add_agent_heard(text, interrupted=interrupted)
        fi = self.false_interruption
        if fi is not None and interrupted and fi.text is None:
            fi.text = unheard.strip()
            self._resume_if_due(out)
        return self._finish(now, out)

    def tool_results(
        self, now: float, exchanges: list[ToolExchange], *, follow_up: bool
    ) -> list[d.Decision]:
        """A turn's tool calls all returned: into the conversation; answer with them."""
        out: list[d.Decision] = []
        self.conversation.add_tool_calls(exchanges)
        if follow_up and exchanges:
            self._reply(now, "tool_results", out)
        return self._finish(now, out)

    def speculation_withdrawn(self, now: float) -> list[d.Decision]:
        """The LLM withdrew the speculative reply (it wanted a tool): commit will ask again."""
        u = self.utterance
        if u.spec is not None:
            u.spec = None
            self.stats.speculations_cancelled += 1
        u.no_speculation = True
        return self._finish(now, [])

    def provider_error(self, now: float) -> list[d.Decision]:
        """A provider reported an error while the call waits: the watchdog acts sooner."""
        self.watchdog.error(now)
        return self._finish(now, [])

    def greet(self, now: float, text: str) -> list[d.Decision]:
        """The call started: the agent speaks first."""
        out: list[d.Decision] = []
        if text:
            self._agent_pending = True
            out.append(d.Say(text, True, "greeting"))
        return self._finish(now, out)

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[d.Decision]:
        """Time passed: act on whatever deadline is due."""
        out: list[d.Decision] = []
        self._judge_overlap(now, out)
        last = self.last
        window = self.options.endpointing.regret_window_s
        if last is not None and last.regret_open and now + EPS >= last.committed_at + window:
            last.regret_open = False
            out.append(d.TurnReport(last.turn_id, dict(last.record)))
        fi = self.false_interruption
        timeout = self.options.interruption.false_interruption_timeout_s
        quiet_since = fi.quiet_since if fi is not None and not self.speaking else None
        if (
            fi is not None
            and not fi.due
            and quiet_since is not None
            and now + EPS >= quiet_since + timeout
        ):
            fi.due = True
            self.stats.false_interruptions += 1
            self._resume_if_due(out)
        entry = self.keypad.tick(now)
        if entry is not None:
            self.stats.keypad_entries += 1
            out.append(d.KeypadEntered(entry))
        self._watchdog(now, out)
        return self._finish(now, out)

    def close(self) -> list[d.Decision]:
        """The call ends: the last turn's figures are final."""
        last = self.last
        if last is None or not last.regret_open:
            return []
        last.regret_open = False
        return [d.TurnReport(last.turn_id, dict(last.record))]

    def next_deadline(self, now: float) -> float | None:
        """When ``tick`` could next decide something (a time after ``now``), or None."""
        times: list[float | None] = [
            self.keypad.deadline(),
            self.watchdog.deadline(),
            self._hold_until if self.paused else None,
            *self._commit_deadlines(),
        ]
        ov = self.overlap
        if ov is not None and not ov.interrupted:
            times += [
                self.judge.duration_due(ov),
                self.judge.resume_due(ov),
                self.judge.over_at(ov),
            ]
        last = self.last
        if last is not None and last.regret_open:
            times.append(last.committed_at + self.options.endpointing.regret_window_s)
        fi = self.false_interruption
        if fi is not None and not fi.due and fi.quiet_since is not None:
            times.append(fi.quiet_since + self.options.interruption.false_interruption_timeout_s)
        future = [t for t in times if t is not None and t > now + EPS]
        return min(future) if future else None

    # ------------------------------------------------------------------ internals

    def _finish(self, now: float, out: list[d.Decision]) -> list[d.Decision]:
        """Decide what is due now, then bring the agent's playback in line (pause/resume)."""
        self._evaluate(now, out)
        want = self._want_pause(now)
        if want != self.paused:
            self.paused = want
            if want:
                self.stats.pauses += 1
                out.append(d.PausePlayback("caller_sound"))
            else:
                out.append(d.ResumePlayback("caller_quiet"))
        self.stats.learned_pause_s = self.endpointer.learned_pause_s
        return out

    def _cancel_pending_reply(self, reason: str, out: list[d.Decision]) -> None:
        last = self.last
        if last is not None and last.reply_pending:
            last.reply_pending = False
            self.stats.replies_cancelled += 1
            self.watchdog.reply_cancelled()
            self._agent_pending = False
            self.paused = False  # the output forgets its pause with the queue it flushes
            out.append(d.CancelReply(reason))

    def _cancel_speculation(self, reason: str, out: list[d.Decision]) -> None:
        u = self.utterance
        if u.spec is not None:
            out.append(d.CancelSpeculation(u.spec.generation, reason))
            self.stats.speculations_cancelled += 1
            u.spec = None

    def _reply(self, now: float, reason: str, out: list[d.Decision]) -> None:
        """Ask the LLM to answer the conversation as it stands (for the last turn)."""
        gen = self._next_id()
        out.append(d.StartReply(gen, self.conversation.llm_context(), reason))
        self._agent_pending = True
        last = self.last
        if last is not None:
            last.reply_pending = True
            last.generation = gen
        self.watchdog.reply_requested(now, rerun=reason == "watchdog")

    def _watchdog(self, now: float, out: list[d.Decision]) -> None:
        action = self.watchdog.tick(now, caller_speaking=self.speaking)
        w = self.options.watchdog
        if action is WatchdogAction.RERUN:
            self.stats.watchdog_reruns += 1
            out.append(d.CancelReply("watchdog"))
            self._reply(now, "watchdog", out)
        elif action is WatchdogAction.FALLBACK:
            self.stats.watchdog_fallbacks += 1
            out.append(d.CancelReply("watchdog"))
            self._agent_pending = True
            out.append(d.Say(w.fallback_text, False, "fallback"))
            if self.last is not None:
                self.last.reply_pending = False
        elif action is WatchdogAction.REPROMPT:
            self.stats.reprompts += 1
            self._agent_pending = True
            out.append(d.Say(w.reprompt_text, False, "reprompt"))

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids
