"""Does caller speech over the agent take the floor? Decided from the audio, confirmed by words.

An ``Overlap`` follows the caller's sound while the agent is audible. It interrupts the agent:

- on *duration* alone: ``min_duration_s`` of sound (LiveKit's default is 0.5 s) in one run
  (quiet shorter than ``join_gap_s`` — a comma — keeps the run), once the VAD confirms it is
  speech, even when no word has arrived yet: a slow STT no longer delays the barge-in;
- on *words*, sooner: ``min_words`` content words, or one clear word ("stop", "wait", "no");
- never on a backchannel alone ("uh-huh", "yeah", "right", a laugh) unless the caller keeps
  talking past ``max_backchannel_s``.

Sound that starts within ``echo_guard_s`` of the agent becoming audible is not timed (echo of
the agent's own voice, a line click); its words still count. What the caller said over the agent
is held back until the overlap is decided: an interruption releases it to the caller's new turn;
a backchannel or a noise is dropped, unless the agent finished speaking meanwhile and the words
came at its very end ("Yeah." over the end of a question is an answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voiceagent.turns.backchannel import content_words, is_backchannel_words, is_clear_word
from voiceagent.turns.options import Interruption
from voiceagent.turns.transcript import Transcript

EPS = 1e-6


@dataclass(slots=True)
class Overlap:
    """Caller sound while the agent is audible, until it is decided."""

    onset: float
    run_start: float
    sounding: bool = True
    quiet_since: float | None = None
    voiced: float = 0.0  # sound in the current run before the current stretch of sound
    sound_since: float | None = None  # start of the current stretch of sound
    speech: bool = False  # the VAD confirmed speech during the overlap
    echo: bool = False  # the first run started inside the echo guard
    words: list[str] = field(default_factory=list)
    backchannel: bool = False
    held: list[Transcript] = field(default_factory=list)
    interrupted: bool = False

    def sound(self, sounding: bool, now: float, join_gap_s: float) -> None:
        """The line turned loud or quiet (quiet shorter than ``join_gap_s`` keeps the run)."""
        if sounding and not self.sounding:
            if self.quiet_since is not None and now - self.quiet_since > join_gap_s + EPS:
                self.run_start = now  # a new run: durations count from here
                self.voiced = 0.0
                self.echo = False
            self.quiet_since = None
            self.sound_since = now
        elif not sounding and self.sounding:
            self.quiet_since = now
            if self.sound_since is not None:
                self.voiced += now - self.sound_since
            self.sound_since = None
        self.sounding = sounding

    def quiet_for(self, now: float) -> float:
        """Seconds the caller has been quiet (0 while sounding)."""
        return 0.0 if self.sounding or self.quiet_since is None else now - self.quiet_since


class InterruptionJudge:
    """The barge-in rules above, for one call."""

    def __init__(self, options: Interruption | None = None) -> None:
        self.options = options or Interruption()

    def words_take_floor(self, text: str) -> bool | None:
        """True: words that interrupt; False: only a backchannel or a hum; None: no words."""
        words = content_words(text)
        if not words:
            return False if any(c.isalnum() for c in text) else None  # "Mm-hmm.", "Uh-huh."
        if is_backchannel_words(words):
            return False
        o = self.options
        return len(words) >= o.min_words or any(is_clear_word(w) for w in words)

    def hear(self, overlap: Overlap, transcript: Transcript) -> bool:
        """Words of the overlap arrived (held); True when they take the floor."""
        overlap.held.append(transcript)
        verdict = self.words_take_floor(" ".join(t.text for t in _latest(overlap.held)))
        if verdict is None:
            return False
        overlap.backchannel = not verdict
        return verdict

    def duration_due(self, overlap: Overlap) -> float | None:
        """When the current run of speech becomes long enough to interrupt (None: not timing)."""
        if overlap.interrupted or not overlap.sounding or not overlap.speech or overlap.echo:
            return None
        o = self.options
        need = o.max_backchannel_s if overlap.backchannel else o.min_duration_s
        since = overlap.sound_since if overlap.sound_since is not None else overlap.run_start
        return since + max(0.0, need - overlap.voiced)

    def takes_floor(self, overlap: Overlap, now: float) -> bool:
        """Whether the duration rule interrupts at ``now``."""
        due = self.duration_due(overlap)
        return due is not None and now + EPS >= due

    def resume_due(self, overlap: Overlap) -> float | None:
        """When a paused agent may go on (the caller has been quiet long enough)."""
        if overlap.interrupted or overlap.sounding or overlap.quiet_since is None:
            return None
        return overlap.quiet_since + self.options.join_gap_s

    def over_at(self, overlap: Overlap) -> float | None:
        """When a quiet overlap is over for good (late words can no longer interrupt)."""
        if overlap.interrupted or overlap.sounding or overlap.quiet_since is None:
            return None
        o = self.options
        return overlap.quiet_since + max(o.late_words_s, o.join_gap_s)

    def answers_agent(self, overlap: Overlap, agent_stopped_at: float) -> bool:
        """Whether the caller's speech was an answer to the agent, which just finished."""
        if overlap.sounding or overlap.quiet_since is None:
            return True
        return agent_stopped_at - overlap.quiet_since <= self.options.end_overlap_s + EPS


def _latest(held: list[Transcript]) -> list[Transcript]:
    """Finals in order plus the newest partial after them (older partials are superseded)."""
    out: list[Transcript] = []
    for t in held:
        if out and not out[-1].final:
            out[-1] = t
        else:
            out.append(t)
    return out


def latest_transcripts(held: list[Transcript]) -> list[Transcript]:
    """The held transcripts worth releasing to the caller's turn (see ``_latest``)."""
    return _latest(held)
