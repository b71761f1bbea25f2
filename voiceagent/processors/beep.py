"""The answering machine's beep: a steady pure tone, found frame by frame in the caller's audio.

Neither pipecat nor the other libraries here detect tones, and a beep is simple enough to find
cheaply: each caller frame (20–100 ms) is windowed and transformed (one real FFT of at least
512 points), and it is *tonal* when it is loud enough and nearly all of its power sits within a
few bins of one peak inside the beep band. Speech never is (its power spreads over many
harmonics and formants), nor are DTMF keys (two tones, each with half the power). A run of tonal
frames at one frequency, at least ``min_beep_s`` long, is a beep; the detector reports when it
qualifies and when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

_FFT_SIZE = 512


class BeepParams(BaseModel):
    """What counts as a beep.

    Attributes:
        min_hz: Lowest beep frequency.
        max_hz: Highest beep frequency.
        min_beep_s: Shortest tone that is a beep.
        purity: Share of the frame's power within ``±peak_bins`` of the peak.
        peak_bins: Half-width of the peak, in FFT bins (a Hann window spreads a tone over 2-3).
        min_rms: Quietest tonal frame (PCM16 RMS).
        max_drift_hz: How far the tone may wander within one beep.
    """

    model_config = ConfigDict(extra="forbid")

    min_hz: float = Field(700.0, gt=0.0)
    max_hz: float = Field(2500.0, gt=0.0)
    min_beep_s: float = Field(0.15, gt=0.0)
    purity: float = Field(0.9, gt=0.0, le=1.0)
    peak_bins: int = Field(3, ge=1)
    min_rms: float = Field(300.0, ge=0.0)
    max_drift_hz: float = Field(60.0, gt=0.0)


@dataclass(frozen=True)
class Beep:
    """A beep that qualified (``ended`` False) or finished (``ended`` True)."""

    hz: float
    duration_s: float
    ended: bool


class BeepDetector:
    """Feed it the caller's PCM16 frames in order; it says when a beep starts and ends."""

    def __init__(self, params: BeepParams | None = None) -> None:
        self.params = params or BeepParams()
        self._window: np.ndarray | None = None
        self._window_size = 0
        self._run_hz: float | None = None
        self._run_s = 0.0
        self._reported = False
        self.beeps = 0

    def tone(self, pcm16: bytes, sample_rate: int) -> float | None:
        """The frequency of the frame's single tone, or None when it is not tonal."""
        samples = np.frombuffer(pcm16, dtype="<i2")
        n = samples.size
        if n < 64 or sample_rate <= 0:
            return None
        x = samples.astype(np.float32)
        if float(np.sqrt(np.mean(x * x))) < self.params.min_rms:
            return None
        if self._window_size != n:
            self._window, self._window_size = np.hanning(n).astype(np.float32), n
        size = max(_FFT_SIZE, 1 << (n - 1).bit_length())
        power = np.abs(np.fft.rfft(x * self._window, size)) ** 2
        hz_per_bin = sample_rate / size
        low = max(1, int(self.params.min_hz / hz_per_bin))
        high = min(power.size - 1, int(self.params.max_hz / hz_per_bin) + 1)
        if high <= low:
            return None
        peak = low + int(np.argmax(power[low:high]))
        k = self.params.peak_bins
        total = float(power[1:].sum())
        if total <= 0.0 or float(power[max(1, peak - k) : peak + k + 1].sum()) < (
            self.params.purity * total
        ):
            return None
        return peak * hz_per_bin

    def feed(self, pcm16: bytes, sample_rate: int) -> Beep | None:
        """One frame of the caller's audio; a :class:`Beep` when one qualifies or ends."""
        duration = len(pcm16) / 2 / sample_rate if sample_rate > 0 else 0.0
        hz = self.tone(pcm16, sample_rate)
        run_hz = self._run_hz
        if hz is not None and run_hz is not None and abs(hz - run_hz) <= self.params.max_drift_hz:
            self._run_s += duration
            if not self._reported and self._run_s >= self.params.min_beep_s:
                self._reported = True
                self.beeps += 1
                return Beep(run_hz, self._run_s, ended=False)
            return None
        ended = Beep(run_hz, self._run_s, ended=True) if self._reported and run_hz else None
        self._run_hz, self._run_s, self._reported = hz, (duration if hz is not None else 0.0), False
        return ended
