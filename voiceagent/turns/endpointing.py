"""When is the caller's utterance over: silence, the caller's own pause, and STT coverage.

Three questions the turn engine asks of an open utterance, answered here without side effects:

- *How long a silence ends it?* ``required_wait``: at least ``min_silence_s``; with
  ``learn_pause`` the caller's own mid-utterance pause (an EMA of VAD stop → start gaps, as
  LiveKit's dynamic endpointing) plus a margin, capped at ``max_silence_s``; more when the words
  sound unfinished ("and", "my number is", a trailing comma) or the end-of-turn model hears more;
  never past ``max_wait_s``.
- *Has the STT heard all of it?* ``covers``: a streaming STT lags the audio, so the newest
  transcript can end words before the caller's voice did. It covers the speech once its audio
  span reaches the end of the voice (within ``coverage_tolerance_s``); without spans, once a
  final or settled partials arrived after the voice ended. After ``max_stt_wait_s`` the engine
  stops waiting for the STT and goes with what it has.
- *Has the text settled?* ``Stability``: a final, or ``stable_partials`` partials agreeing in
  normal form (case, punctuation and fillers ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceagent.turns.options import Endpointing
from voiceagent.turns.transcript import TurnTranscript

EPS = 1e-6


class Endpointer:
    """The caller's learned pause and the end-of-utterance rules."""

    def __init__(self, options: Endpointing | None = None) -> None:
        self.options = options or Endpointing()
        self.learned_pause_s: float | None = None

    def learn(self, gap_s: float) -> None:
        """A pause inside the caller's speech (VAD stop → next start) of ``gap_s``."""
        o = self.options
        if not o.learn_pause or gap_s <= 0 or gap_s > o.max_wait_s:
            return
        if self.learned_pause_s is None:
            self.learned_pause_s = gap_s
        else:
            self.learned_pause_s = (
                o.pause_alpha * gap_s + (1 - o.pause_alpha) * self.learned_pause_s
            )

    def required_wait(self, *, hesitation: bool, sounds_unfinished: bool = False) -> float:
        """Seconds of silence after the voice ended before the utterance may be committed."""
        o = self.options
        base = o.min_silence_s
        if o.learn_pause and self.learned_pause_s is not None:
            base = min(
                max(self.learned_pause_s + o.pause_margin_s, o.min_silence_s), o.max_silence_s
            )
        if hesitation:
            base += o.hesitation_extra_s
        elif sounds_unfinished:
            base += o.acoustic_extra_s
        return min(base, o.max_wait_s)

    def covers(
        self, transcript: TurnTranscript, voice_end: float, now: float, *, settled: bool
    ) -> bool:
        """Whether ``transcript`` has heard the caller up to ``voice_end`` (or waiting is over)."""
        o = self.options
        if now - voice_end >= o.max_stt_wait_s - EPS:
            return True
        covered = transcript.covered_until
        if covered is not None:
            return covered >= voice_end - o.coverage_tolerance_s - EPS
        last_at = transcript.last_at
        return settled and last_at is not None and last_at >= voice_end - EPS

    def covering_deadline(self, voice_end: float) -> float:
        """When waiting for a covering transcript ends."""
        return voice_end + self.options.max_stt_wait_s


@dataclass(slots=True)
class Stability:
    """How long the latest normalized text has stayed the same."""

    norm: str = ""
    count: int = 0
    since: float | None = None

    def update(self, norm: str, now: float) -> bool:
        """Take the latest normal form; True when the text changed."""
        if norm == self.norm:
            if norm:
                self.count += 1
            return False
        self.norm = norm
        self.count = 1 if norm else 0
        self.since = now if norm else None
        return True

    def stable(self, partials: int) -> bool:
        """Whether ``partials`` hypotheses in a row agreed."""
        return bool(self.norm) and self.count >= partials

    def reset(self) -> None:
        """Forget the text."""
        self.norm, self.count, self.since = "", 0, None
