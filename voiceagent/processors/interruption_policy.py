"""When caller speech interrupts the agent: pure decision logic, fed (event, time), no frames.

The policy follows one caller *utterance* at a time (from a VAD start to the next VAD start) and
decides what happens to its transcripts:

- started while the agent was silent → ``FORWARD`` (turn taking is the router's business);
- started within ``echo_guard_s`` after the agent started speaking → ``DROP`` (likely echo);
- started while the agent speaks → ``HOLD`` until it proves an interruption, then ``INTERRUPT``:
  speech longer than ``min_speech_s`` AND (``min_words`` content words OR one clear word),
  unless it is only a backchannel ("uh-huh", "yeah", "got it");
- the agent finishes while a held utterance is still going (or just ended) → ``RELEASE`` it to
  the router (a "yes" over the end of a question is an answer); otherwise ``DISCARD`` it;
- the caller was already talking when the agent started → transcripts keep flowing, and only
  the words said over the agent count towards an interruption.

After an interruption, if no words arrive within ``resume_timeout_s`` of quiet (noise, a
cough that STT turned into a word), it was a false interruption: ``RESUME`` the agent's
unheard remainder (from ``AgentHeardFrame``) instead of leaving the call silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pydantic import BaseModel, Field

from voiceagent.processors.backchannel import content_words, is_backchannel_words, is_clear_word

_EPS = 1e-9


class BargeInParams(BaseModel):
    """Tuning of the barge-in gate.

    Attributes:
        min_speech_s: Caller speech over the agent must last this long to interrupt.
        min_words: Content words (fillers excluded) that interrupt; fewer interrupt only if one
            of them is a clear word ("stop", "no", "wait").
        echo_guard_s: Ignore caller speech that starts this soon after the agent starts
            speaking (echo / AEC warm-up). 0 turns the guard off (headsets).
        resume_timeout_s: After an interruption, quiet without words for this long makes it a
            false interruption.
        resume: Re-speak the unheard remainder after a false interruption.
        late_words_s: Words arriving this long after the caller stopped can still interrupt
            (slow STT finals).
        end_overlap_s: A held utterance that ended at most this long before the agent finished
            speaking is released to the router instead of swallowed.
        join_gap_s: Caller speech resuming within this pause continues the held utterance (VAD
            splits "Sorry, | can you tell me..." at the comma): its words are kept, not reset.
    """

    min_speech_s: float = Field(default=0.3, ge=0.0)
    min_words: int = Field(default=2, ge=1)
    echo_guard_s: float = Field(default=0.3, ge=0.0)
    resume_timeout_s: float = Field(default=1.5, gt=0.0)
    resume: bool = True
    late_words_s: float = Field(default=1.0, ge=0.0)
    end_overlap_s: float = Field(default=0.5, ge=0.0)
    join_gap_s: float = Field(default=0.6, ge=0.0)


@dataclass
class BargeInStats:
    """Counters of one call's barge-in decisions."""

    interruptions: int = 0
    backchannels_ignored: int = 0
    echo_guarded: int = 0
    false_interruptions: int = 0
    resumes: int = 0


class GateAction(Enum):
    """What the gate does with a transcript or after an event."""

    NONE = "none"
    FORWARD = "forward"  # pass the transcript on
    HOLD = "hold"  # keep it back while deciding
    DROP = "drop"  # swallow it
    INTERRUPT = "interrupt"  # broadcast an interruption, then forward what was held
    RELEASE = "release"  # forward what was held
    DISCARD = "discard"  # forget what was held
    RESUME = "resume"  # speak ``take_resume_text()``


class UtteranceMode(Enum):
    """How one caller utterance relates to the agent's speech."""

    PASS = "pass"
    OVERLAP = "overlap"
    ECHO = "echo"
    DECIDING = "deciding"
    OPEN = "open"
    DROPPED = "dropped"


@dataclass(slots=True)
class _Utterance:
    mode: UtteranceMode
    onset: float
    vad: bool = True
    ended_at: float | None = None
    speech_from: float = 0.0  # when speech over the agent began (duration is measured from it)
    last_words: int = 0  # content words of the latest transcript
    last_final: bool = False
    baseline: int = 0  # words of the partial in flight when the agent started (OVERLAP)
    qualifies: bool = False  # the words so far would interrupt once the duration holds
    backchannel_counted: bool = False
    words_at_open: int = 0


@dataclass(slots=True)
class _Resume:
    utterance: _Utterance
    quiet_since: float | None
    text: str | None = None
    due: bool = False


class InterruptionPolicy:
    """Barge-in decisions for one call. Feed it events with their times; act on what it returns."""

    def __init__(self, params: BargeInParams | None = None) -> None:
        self.params = params or BargeInParams()
        self.stats = BargeInStats()
        self._agent_speaking = False
        self._agent_started_at = 0.0
        self._utt: _Utterance | None = None
        self._resume: _Resume | None = None
        self._resume_text = ""

    @property
    def agent_speaking(self) -> bool:
        """Whether the agent is speaking (and has not been interrupted)."""
        return self._agent_speaking

    @property
    def caller_speaking(self) -> bool:
        """Whether the caller's current utterance is still going (per VAD)."""
        return self._utt is not None and self._utt.vad and self._utt.ended_at is None

    # -- events ------------------------------------------------------------------------------

    def on_agent_started(self, now: float) -> None:
        """The agent's audio started playing."""
        if self._agent_speaking:
            return
        self._agent_speaking = True
        self._agent_started_at = now
        self._resume = None  # the agent talks again: nothing to resume
        u = self._utt
        if (
            u is not None
            and u.ended_at is None
            and u.mode in (UtteranceMode.PASS, UtteranceMode.OPEN)
        ):
            u.mode = UtteranceMode.OVERLAP
            u.speech_from = now
            u.qualifies = False
            u.baseline = 0 if u.last_final else u.last_words

    def on_agent_stopped(self, now: float) -> GateAction:
        """The agent's audio stopped playing. Returns ``RELEASE``, ``DISCARD`` or ``NONE``."""
        if not self._agent_speaking:
            return GateAction.NONE
        self._agent_speaking = False
        u = self._utt
        if u is None:
            return GateAction.NONE
        if u.mode is UtteranceMode.DECIDING:
            if u.ended_at is None or now - u.ended_at <= self.params.end_overlap_s + _EPS:
                u.mode = UtteranceMode.PASS
                return GateAction.RELEASE
            u.mode = UtteranceMode.DROPPED
            return GateAction.DISCARD
        if u.mode is UtteranceMode.OVERLAP or (u.mode is UtteranceMode.ECHO and u.ended_at is None):
            u.mode = UtteranceMode.PASS
        return GateAction.NONE

    def on_caller_started(self, now: float, start_secs: float = 0.0) -> None:
        """VAD: the caller started speaking (``start_secs`` of speech before this detection)."""
        if self.caller_speaking:
            return
        self._utt = self._new_utterance(now - max(0.0, start_secs), vad=True)
        if self._resume is not None:
            if self._resume.due:
                self._resume = None  # the caller has the floor now
            else:
                self._resume.quiet_since = None

    def on_caller_stopped(self, now: float, stop_secs: float = 0.0) -> None:
        """VAD: the caller stopped speaking (detected ``stop_secs`` after the speech ended)."""
        u = self._utt
        if u is None or not u.vad or u.ended_at is not None:
            return
        u.ended_at = max(u.onset, now - max(0.0, stop_secs))
        if self._resume is not None:
            self._resume.quiet_since = u.ended_at

    def on_transcript(self, text: str, *, final: bool, now: float) -> GateAction:
        """A partial (``final=False``) or final transcript of the caller's speech."""
        words = content_words(text)
        u = self._utt
        stale = u is None or (
            u.ended_at is not None and now - u.ended_at > self.params.late_words_s + _EPS
        )
        if stale:
            if self._agent_speaking:
                # Speech the VAD missed (or long after the last utterance): judge it afresh.
                u = self._utt = self._new_utterance(now, vad=False)
            elif u is None or not u.vad:
                self._confirm_resume(words, final, None)
                return GateAction.FORWARD
        assert u is not None
        if not u.vad:
            u.ended_at = now  # a transcript without VAD proves speech up to now
        self._confirm_resume(words, final, u)
        counted, hummed = words, bool(text.strip())
        if u.mode is UtteranceMode.OVERLAP and u.baseline:
            counted, hummed = words[u.baseline :], False  # only the words said over the agent
            if final:
                u.baseline = 0  # the segment in flight is complete; later partials are new
        u.last_words, u.last_final = len(words), final
        mode = u.mode
        if mode in (UtteranceMode.PASS, UtteranceMode.OPEN):
            return GateAction.FORWARD
        if mode in (UtteranceMode.ECHO, UtteranceMode.DROPPED):
            return GateAction.DROP
        u.qualifies = self._wants_floor(counted, u, hummed=hummed)
        if u.qualifies and self._duration_ok(u, now):
            self._open(u, now)
            return GateAction.INTERRUPT
        return GateAction.FORWARD if mode is UtteranceMode.OVERLAP else GateAction.HOLD

    def on_agent_heard(self, *, interrupted: bool, unheard_text: str, now: float) -> GateAction:
        """``AgentHeardFrame`` of a finished or interrupted agent turn. May return ``RESUME``."""
        r = self._resume
        if r is None or r.text is not None or not interrupted:
            return GateAction.NONE
        r.text = unheard_text.strip()
        if not r.text:
            self._resume = None
            return GateAction.NONE
        return self._resume_if_due()

    def tick(self, now: float) -> GateAction:
        """Time passed: act on a due deadline (``INTERRUPT``, ``RESUME`` or ``NONE``)."""
        u = self._utt
        if (
            u is not None
            and self._agent_speaking
            and u.mode in (UtteranceMode.DECIDING, UtteranceMode.OVERLAP)
            and u.qualifies
            and u.ended_at is None
            and self._duration_ok(u, now)
        ):
            self._open(u, now)
            return GateAction.INTERRUPT
        r = self._resume
        if (
            r is not None
            and not r.due
            and r.quiet_since is not None
            and now + _EPS >= r.quiet_since + self.params.resume_timeout_s
        ):
            r.due = True
            self.stats.false_interruptions += 1
            return self._resume_if_due()
        return GateAction.NONE

    def next_deadline(self) -> float | None:
        """When ``tick`` should next be called (``None``: no deadline pending)."""
        deadlines: list[float] = []
        u = self._utt
        if (
            u is not None
            and self._agent_speaking
            and u.mode in (UtteranceMode.DECIDING, UtteranceMode.OVERLAP)
            and u.qualifies
            and u.ended_at is None
        ):
            deadlines.append(u.speech_from + self.params.min_speech_s)
        r = self._resume
        if r is not None and not r.due and r.quiet_since is not None:
            deadlines.append(r.quiet_since + self.params.resume_timeout_s)
        return min(deadlines) if deadlines else None

    def take_resume_text(self) -> str:
        """The text to re-speak after a ``RESUME`` (empty once taken)."""
        text, self._resume_text = self._resume_text, ""
        return text

    # -- internals ---------------------------------------------------------------------------

    def _new_utterance(self, onset: float, *, vad: bool) -> _Utterance:
        if not self._agent_speaking:
            return _Utterance(UtteranceMode.PASS, onset, vad=vad, speech_from=onset)
        guard_end = self._agent_started_at + self.params.echo_guard_s
        if self._agent_started_at - _EPS <= onset < guard_end - _EPS:
            self.stats.echo_guarded += 1
            return _Utterance(UtteranceMode.ECHO, onset, vad=vad, speech_from=onset)
        return _Utterance(UtteranceMode.DECIDING, onset, vad=vad, speech_from=onset)

    def _wants_floor(self, words: list[str], u: _Utterance, *, hummed: bool) -> bool:
        """Whether ``words`` take the floor; ``hummed``: there was text (maybe only fillers)."""
        if (words and is_backchannel_words(words)) or (not words and hummed):
            if not u.backchannel_counted:
                u.backchannel_counted = True
                self.stats.backchannels_ignored += 1
            return False
        if not words:
            return False
        return len(words) >= self.params.min_words or any(is_clear_word(w) for w in words)

    def _duration_ok(self, u: _Utterance, now: float) -> bool:
        if not u.vad:
            return True  # no VAD timing: the words are the evidence
        end = now if u.ended_at is None else u.ended_at
        return end - u.speech_from + _EPS >= self.params.min_speech_s

    def _open(self, u: _Utterance, now: float) -> None:
        u.mode = UtteranceMode.OPEN
        u.words_at_open = u.last_words
        self.stats.interruptions += 1
        self._agent_speaking = False
        quiet = u.ended_at if u.ended_at is not None else (now if not u.vad else None)
        self._resume = _Resume(utterance=u, quiet_since=quiet)

    def _confirm_resume(self, words: list[str], final: bool, u: _Utterance | None) -> None:
        r = self._resume
        if r is None or not words:
            return
        if r.utterance is not u or final or len(words) > r.utterance.words_at_open:
            self._resume = None  # the caller did say something: no false interruption

    def _resume_if_due(self) -> GateAction:
        r = self._resume
        if r is None or not r.due or r.text is None:
            return GateAction.NONE
        self._resume = None
        if not self.params.resume:
            return GateAction.NONE
        self._resume_text = r.text
        self.stats.resumes += 1
        return GateAction.RESUME
