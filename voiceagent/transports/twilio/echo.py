"""The agent's own voice coming back on the caller's line: an echo suppressor's judgement.

A speakerphone, a cheap handset or a 2-wire hybrid without echo cancellation sends the agent's
voice back to the server some 50–500 ms later, a few to 20 dB quieter. To the VAD that echo is
speech and to the STT it is words, so the agent paused for it, interrupted itself and answered
its own sentences (`voiceagent eval --category interrupters --condition speakerphone`: false
barge-ins 25/64, double answers 6/12, STT WER 73 %). Pipecat and LiveKit leave echo to the
client's WebRTC echo canceller, which a phone call does not pass through (pipecat#1771).

:class:`AgentEcho` does what the non-linear processor of a telephone echo canceller does, on
20 ms levels:

- As one of TwilioOutput's playout taps it is told every 20 ms of agent audio sent, with the
  time it will play (:meth:`AgentEcho.agent_audio`); a ``clear`` drops what had not played.
- The reference for a caller block is the loudest agent block played in the last
  ``WINDOW_S``: the echo path's delay is not known, the window covers it (Geigel's detector).
- While the agent is playing, the line's level against that reference is learned: the caller
  is quiet most of that time, so the ratio is the echo's (or, with no echo, the line noise's).
  Its 95th percentile times ``MARGIN`` (at most ``MAX_RATIO``) is the threshold: a block under
  it carries nothing but echo, and ``CallerVoiceProcessor`` mutes it before the VAD, the onset
  and the STT hear it.
- A block over the threshold is the caller talking over the agent: nothing is muted for
  ``HANGOVER_S``, so the caller's quieter syllables go through with the loud ones, and those
  blocks are not learned from.

On a line without echo the learned level is the line's noise, which does not stand out of the
line's noise floor (:meth:`AgentEcho.heard_over`): nothing is muted there. Per caller frame
while the agent is audible: one pass over ≤ 50 levels and a ring write per 20 ms block;
nothing when it is not. The recording keeps the line as it was.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.transports.twilio.line_format import MULAW_8K, LineFormat

WINDOW_S = 1.0
"""Agent audio played this long before a caller block can be what came back in it."""
LEARN_WINDOW_S = 0.5
"""The echo ratio is learned only while agent audio played this recently (not in a pause)."""
REFERENCE_MIN_RMS = 300.0
"""Agent blocks quieter than this are no reference (the agent is between words, or silent)."""
PERCENTILE = 95.0
TYPICAL_PERCENTILE = 80.0
MARGIN = 2.0
"""The threshold: the learned ratios' 95th percentile times this (echo peaks stay under it)."""
MAX_RATIO = 0.35
"""The threshold never exceeds this share of the reference (≈ 9 dB under the agent): a caller
speaking at a normal level over the agent is never muted, whatever was learned."""
HANGOVER_S = 0.3
"""Once a block is louder than the echo (the caller talks over the agent), nothing is muted for
this long: the caller's quieter syllables go through with the loud ones."""
ECHO_OVER_FLOOR = 5.0
"""Echo is muted only on a line where it stands this far over the noise floor (≈ 14 dB)."""
LEARN_BLOCKS = 15
"""Blocks of audible agent needed before anything is muted (the first 300 ms of its voice)."""
RING_BLOCKS = 150
ESTIMATE_EVERY = 10


class AgentEcho:
    """One call's agent audio levels by play time, and the echo judgement of caller blocks."""

    def __init__(self, *, clock: Clock = DEFAULT_CLOCK, line_format: LineFormat = MULAW_8K):
        self._clock = clock
        self._squares: np.ndarray | None = None
        if line_format.sample_width == 1:
            codes = np.frombuffer(line_format.to_pcm16(bytes(range(256))), dtype="<i2")
            self._squares = codes.astype(np.float64) ** 2
        self._played: deque[tuple[float, float]] = deque()  # (play_at, rms), in play order
        self._ratios = np.zeros(RING_BLOCKS)
        self._seen = 0
        self._threshold = 0.0  # nothing muted until learned
        self._typical = 0.0  # the learned ratios' 80th percentile: the echo, where there is one
        self._open_until = -math.inf
        self._reference_at = math.nan
        self._reference = (0.0, 0.0)
        self.echo_blocks = 0

    # -- a PlayoutTap of TwilioOutput ------------------------------------------------------

    def agent_audio(self, turn_id: int, audio: bytes, play_at: float) -> None:
        """One frame of agent audio (line format) went out; it plays from ``play_at``."""
        if self._squares is not None:  # μ-law: the squared level of each code, looked up
            mean_square = float(self._squares[np.frombuffer(audio, dtype=np.uint8)].mean())
        else:
            pcm = np.frombuffer(audio, dtype="<i2").astype(np.float32)
            mean_square = float(np.dot(pcm, pcm)) / pcm.size if pcm.size else math.nan
        if mean_square == mean_square:  # not an empty frame
            self._played.append((play_at, math.sqrt(mean_square)))
            self._reference_at = math.nan

    def agent_cleared(self, at: float) -> None:
        """A barge-in ``clear`` at ``at``: the audio that had not started playing never played."""
        played = self._played
        while played and played[-1][0] > at:
            played.pop()
        self._reference_at = math.nan

    def agent_paused(self, at: float, held_s: float) -> None:
        """A soft ``clear`` at ``at``: as a clear (the held audio is reported again when sent)."""
        self.agent_cleared(at)

    def agent_mark(self, name: str, at: float) -> None:
        """Marks say nothing of levels."""

    # -- the voice stage's questions ----------------------------------------------------------

    def agent_audible(self, now: float | None = None) -> bool:
        """Whether agent audio played within the last ``WINDOW_S`` (cheap: no caller work else)."""
        played = self._played
        if not played:
            return False
        now = self._clock.now() if now is None else now
        return played[-1][0] >= now - WINDOW_S and played[0][0] <= now

    def heard_over(self, noise_floor: float) -> bool:
        """Whether the echo stands out of the line's noise (else there is none worth muting).

        The line's typical level while the agent plays (the learned ratios' 80th percentile
        times the reference) against ``ECHO_OVER_FLOOR`` times its noise floor (the voice
        stage's). On a noisy line without echo both are the noise, and muting the noise under
        the agent only clipped the starts of the caller's words (street noise: STT WER 2.6 →
        11.7 % on the interrupters' calls).
        """
        if self._seen < LEARN_BLOCKS:
            return False
        return self._typical * self._reference[0] > ECHO_OVER_FLOOR * noise_floor

    def reference(self, now: float | None = None) -> tuple[float, float]:
        """The loudest agent block played in the last ``WINDOW_S`` and ``LEARN_WINDOW_S``."""
        now = self._clock.now() if now is None else now
        if now == self._reference_at:
            return self._reference  # the other blocks of the same frame
        played = self._played
        start, recent = now - WINDOW_S, now - LEARN_WINDOW_S
        while played and played[0][0] < start:
            played.popleft()
        loudest = loudest_recent = 0.0
        for play_at, rms in played:
            if play_at > now:
                break
            if rms > loudest:
                loudest = rms
            if play_at >= recent and rms > loudest_recent:
                loudest_recent = rms
        self._reference_at, self._reference = now, (loudest, loudest_recent)
        return self._reference

    def is_echo(self, rms: float, now: float | None = None) -> bool:
        """Whether a caller block of ``rms`` (PCM16) heard at ``now`` is the agent's echo."""
        if not self._played:
            return False
        now = self._clock.now() if now is None else now
        reference, recent = self.reference(now)
        if reference < REFERENCE_MIN_RMS:
            return False
        ratio = rms / reference
        if now < self._open_until:
            return False  # the caller is talking over the agent: let it all through
        if recent >= REFERENCE_MIN_RMS:  # the agent is playing now: learn what comes back
            self._ratios[self._seen % RING_BLOCKS] = ratio
            self._seen += 1
            seen = self._seen
            if seen == LEARN_BLOCKS or (seen > LEARN_BLOCKS and seen % ESTIMATE_EVERY == 0):
                ratios = self._ratios[: min(seen, RING_BLOCKS)]
                learned, typical = np.percentile(ratios, (PERCENTILE, TYPICAL_PERCENTILE))
                self._threshold = min(float(learned) * MARGIN, MAX_RATIO)
                self._typical = float(typical)
        if self._seen < LEARN_BLOCKS:
            return False
        if ratio > self._threshold:
            self._open_until = now + HANGOVER_S
            return False
        self.echo_blocks += 1
        return True
