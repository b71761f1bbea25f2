"""The caller's phone line under a :class:`~voiceagent.emulator.conditions.LineCondition`.

:class:`PhoneLine` turns each clean 20 ms chunk the caller's script produces into what the
line carries: background noise at the condition's SNR (all call long, between lines too), the
agent's own voice echoed back through a speakerphone (what the caller heard ``echo_delay_ms``
ago, ``echo_level_db`` quieter), the line's level, then μ-law. :class:`LinkLoss` decides which
media messages are lost and how late each arrives (jitter keeps their order, as one WebSocket
does: late messages arrive in bunches). Both are deterministic for a seed; neither sleeps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from voiceagent.emulator.audio import PHONE_SAMPLE_RATE, ulaw_decode, ulaw_encode
from voiceagent.emulator.conditions import LineCondition
from voiceagent.emulator.noise import noise_loop

EchoSource = Callable[[float, int], bytes]
"""``(stream time, samples)`` → the agent audio the caller heard from that time (PCM16)."""
SPEECH_FLOOR_RMS = 300.0
"""A 20 ms frame louder than this is the caller speaking (for the speech level of the SNR)."""


def speech_rms(pcm_lines: list[bytes]) -> float:
    """The caller's active speech level: RMS over the 20 ms frames louder than the floor."""
    frames = []
    for pcm in pcm_lines:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        usable = samples.size - samples.size % 160
        if usable:
            frames.append(samples[:usable].reshape(-1, 160))
    if not frames:
        return 3000.0
    blocks = np.concatenate(frames)
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    voiced = rms[rms > SPEECH_FLOOR_RMS]
    return float(np.sqrt(np.mean(voiced**2))) if voiced.size else 3000.0


class PhoneLine:
    """Noise, echo and level of the caller's line, one 20 ms chunk at a time."""

    def __init__(self, condition: LineCondition, speech_level_rms: float) -> None:
        """Prepare the line.

        Args:
            condition: What the line does.
            speech_level_rms: The caller's speech level (PCM16 RMS); the noise is set below it.
        """
        self.condition = condition
        self._noise = None
        self._noise_gain = 0.0
        if condition.noise is not None:
            self._noise = noise_loop(condition.noise, condition.seed)
            self._noise_gain = speech_level_rms / (10.0 ** (condition.snr_db / 20.0))
        self._echo_gain = 10.0 ** (condition.echo_level_db / 20.0)
        self._line_gain = 10.0 ** (condition.gain_db / 20.0)
        self._position = 0

    def carry(self, ulaw: bytes, now_s: float, echo: EchoSource | None = None) -> bytes:
        """What the line carries for the chunk ``ulaw`` that ends at stream time ``now_s``."""
        c = self.condition
        n = len(ulaw)
        signal = np.frombuffer(ulaw_decode(ulaw), dtype="<i2").astype(np.float64)
        if self._noise is not None:
            loop = self._noise
            index = (self._position + np.arange(n)) % loop.size
            signal = signal + loop[index] * self._noise_gain
        self._position += n
        if c.echo_delay_ms is not None and echo is not None:
            start = now_s - n / PHONE_SAMPLE_RATE - c.echo_delay_ms / 1000.0
            if start >= 0.0:
                back = np.frombuffer(echo(start, n), dtype="<i2").astype(np.float64)
                if back.size == n:
                    signal = signal + back * self._echo_gain
        signal = np.clip(np.round(signal * self._line_gain), -32768, 32767).astype("<i2")
        return ulaw_encode(signal.tobytes())


class LinkLoss:
    """Which caller media messages are lost, and how late each arrives.

    Losses follow a two-state (Gilbert) model: bursts of ``loss_burst`` messages on average,
    ``loss`` of them overall. Delays are exponential with mean ``jitter_ms``; a message never
    arrives before the one sent before it.
    """

    def __init__(self, condition: LineCondition) -> None:
        """Prepare the link for ``condition`` (its seed makes it repeatable)."""
        self._rng = np.random.default_rng(condition.seed + 7919)
        loss, burst = condition.loss, condition.loss_burst
        self._leave_bad = 1.0 / burst
        self._enter_bad = loss / (burst * (1.0 - loss)) if loss > 0 else 0.0
        self._bad = False
        self._jitter_s = condition.jitter_ms / 1000.0
        self._last_arrival = 0.0
        self.lost = 0
        self.sent = 0

    def lose(self) -> bool:
        """Whether the next media message is lost."""
        self.sent += 1
        if self._bad:
            self._bad = self._rng.random() >= self._leave_bad
        else:
            self._bad = self._rng.random() < self._enter_bad
        if self._bad:
            self.lost += 1
        return self._bad

    def arrival(self, sent_s: float) -> float:
        """When a message sent at ``sent_s`` is delivered (never before the previous one)."""
        delay = self._rng.exponential(self._jitter_s) if self._jitter_s > 0 else 0.0
        self._last_arrival = max(self._last_arrival, sent_s + delay)
        return self._last_arrival
