"""The caller's loudness for the VAD's volume gate, measured as a stream.

pipecat's VAD gates Silero's confidence with a volume: the BS.1770 loudness of the last
400 ms (``AudioVolumeTracker`` → ``calculate_audio_volume``), normalized from -110…-10 LUFS to
0…1 and smoothed. It re-measures the whole 400 ms from scratch for every 32 ms window —
K-weighting filters restarted on 6400 samples, then the gating — which cost more CPU per
call than the Silero model itself (``bench/caller_audio.py``: ≈ 37 µs of a frame's 152 µs).

``StreamLoudness`` measures the same quantity incrementally: the K-weighting filter runs on
each window's new samples only (its state carried over, ``scipy.signal.lfilter``), and the
window's mean square is kept over a ring of the last 400 ms of filtered squares. For a single
400 ms gating block, BS.1770's integrated loudness is that block's loudness (-0.691 + 10
log10 of the mean square) when it is above the -70 LUFS absolute gate, else silence; the
only difference from pipecat's is the filter's start-up at each window's first samples,
which pipecat restarts and this does not (|Δ| ≤ 0.001 on the 0…1 scale on speech, noise and
silence: ``tests/processors/test_loudness.py``). It is a drop-in for pipecat's tracker (the
same ``update`` / ``volume`` / ``reset``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

WINDOW_S = 0.4
"""BS.1770's gating block, pipecat's ``VOLUME_WINDOW_SECS``."""
_FULL_SCALE_SQUARED = 1.0 / 32768.0**2
"""int16 units to full scale, for a mean square."""
_ABSOLUTE_GATE_LUFS = -70.0
_FLOOR_LUFS, _CEILING_LUFS = -110.0, -10.0
"""pipecat's normalization range (``calculate_audio_volume``)."""


def k_weighting(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """BS.1770's K-weighting (high shelf, then RLB high-pass) at ``sample_rate``, as one filter.

    The two biquads are derived from their analog prototypes for any rate (libebur128's
    parameters, the ones BS.1770's 48 kHz coefficients come from).
    """
    k = math.tan(math.pi * 1681.974450955533 / sample_rate)
    q = 0.7071752369554196
    vh = 10 ** (3.999843853973347 / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf_b = np.array([vh + vb * k / q + k * k, 2 * (k * k - vh), vh - vb * k / q + k * k]) / a0
    shelf_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    k = math.tan(math.pi * 38.13547087602444 / sample_rate)
    q = 0.5003270373238773
    a0 = 1 + k / q + k * k
    pass_b = np.array([1.0, -2.0, 1.0])
    pass_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    return np.convolve(shelf_b, pass_b), np.convolve(shelf_a, pass_a)


class StreamLoudness:
    """Loudness of the last 400 ms of a mono int16 stream, 0 (quiet) … 1 (loud).

    Reads 0 until 400 ms have arrived, as pipecat's tracker; a new sample rate starts over.
    Per update: one filter run over the new samples (its output the only array made) and a
    sum over the ring, no logging.
    """

    def __init__(self) -> None:
        self._sample_rate = 0
        self._b = self._a = np.zeros(1)
        self._state = np.zeros(4)
        self._ring = np.zeros(0)
        self._at = 0
        self._filled = 0

    @property
    def volume(self) -> float:
        """The loudness of the last 400 ms on pipecat's 0…1 scale."""
        if self._filled < len(self._ring) or not len(self._ring):
            return 0.0
        mean_square = float(self._ring.sum()) * _FULL_SCALE_SQUARED / len(self._ring)
        if mean_square <= 0.0:
            return 0.0
        lufs = -0.691 + 10.0 * math.log10(mean_square)
        if lufs < _ABSOLUTE_GATE_LUFS:
            return 0.0
        level = (lufs - _FLOOR_LUFS) / (_CEILING_LUFS - _FLOOR_LUFS)
        return min(1.0, max(0.0, level))

    def update(self, audio: bytes, sample_rate: int) -> None:
        """Add int16 mono audio (any length) at ``sample_rate``."""
        if sample_rate != self._sample_rate:
            self._sample_rate = sample_rate
            self._b, self._a = k_weighting(sample_rate)
            self._ring = np.zeros(math.ceil(WINDOW_S * sample_rate))
            self.reset()
        if not audio:
            return
        # Filtered in int16 units (lfilter makes the one float copy; the filter is linear, so
        # the full-scale factor is applied to the mean square when read), squared in place.
        squares, self._state = lfilter(
            self._b, self._a, np.frombuffer(audio, dtype=np.int16), zi=self._state
        )
        np.square(squares, out=squares)
        size = len(self._ring)
        if len(squares) >= size:
            self._ring[:] = squares[-size:]
            self._at, self._filled = 0, size
            return
        end = self._at + len(squares)
        if end <= size:
            self._ring[self._at : end] = squares
        else:
            split = size - self._at
            self._ring[self._at :] = squares[:split]
            self._ring[: end - size] = squares[split:]
        self._at = end % size
        self._filled = min(size, self._filled + len(squares))

    def reset(self) -> None:
        """Forget the audio so far (the filter's state too)."""
        self._state = np.zeros(4)
        self._ring[:] = 0.0
        self._at = 0
        self._filled = 0
