"""Background noise of a phone line, made here (no recordings downloaded): office, street, babble.

Each kind is a deterministic (seeded) loop of 8 kHz samples with unit RMS, mixed into the
caller's audio at a signal-to-noise ratio by :class:`voiceagent.emulator.line.PhoneLine`:

- ``office``: pink (1/f) noise of air conditioning and room tone, a mains hum with harmonics,
  and keyboard clicks (short decaying bursts, ~3 per second);
- ``street``: brown (1/f²) rumble, vehicles passing (low-passed noise swelling and fading every
  few seconds) and now and then a two-tone horn;
- ``babble``: six people talking at once — real speech, Debian's Asterisk prompts strung with
  random gaps per talker (speech-shaped modulated noise if the prompts are not installed).
"""

from __future__ import annotations

import wave
from functools import cache

import numpy as np

from voiceagent.emulator.audio import PHONE_SAMPLE_RATE

KINDS = ("office", "street", "babble")
LOOP_S = 30.0
BABBLE_TALKERS = 6
_RATE = PHONE_SAMPLE_RATE


def _colored(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (1: pink, 2: brown), 50 Hz high-passed."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / _RATE)
    shape = np.zeros_like(freqs)
    audible = freqs >= 50.0
    shape[audible] = freqs[audible] ** (-exponent / 2.0)
    return np.fft.irfft(spectrum * shape, n)


def _unit(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    return x / rms


def _lowpass(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(x.size, 1.0 / _RATE) > cutoff_hz] = 0.0
    return np.fft.irfft(spectrum, x.size)


def office(n: int, rng: np.random.Generator) -> np.ndarray:
    """Room tone, hum and keyboard clicks."""
    t = np.arange(n) / _RATE
    room = _unit(_colored(n, rng, 1.0))
    hum = sum(np.sin(2 * np.pi * 60.0 * k * t) / k for k in (1, 2, 3))
    clicks = np.zeros(n)
    decay = np.exp(-np.arange(80) / 12.0)  # 10 ms, a sharp click
    for start in rng.integers(0, max(1, n - 80), size=int(3.0 * n / _RATE)):
        clicks[start : start + 80] += rng.standard_normal(80) * decay * rng.uniform(0.5, 1.5)
    return _unit(room + 0.3 * _unit(hum) + 0.8 * clicks)


def street(n: int, rng: np.random.Generator) -> np.ndarray:
    """Traffic rumble, passing vehicles and a horn now and then."""
    t = np.arange(n) / _RATE
    rumble = _unit(_colored(n, rng, 2.0))
    cars = np.zeros(n)
    hiss = _unit(_lowpass(rng.standard_normal(n), 1500.0))
    for center in rng.uniform(0, n / _RATE, size=max(1, int(n / _RATE / 5.0))):
        cars += np.exp(-(((t - center) / rng.uniform(1.0, 2.5)) ** 2)) * rng.uniform(1.0, 3.0)
    horn = np.zeros(n)
    for start in rng.uniform(0, max(0.1, n / _RATE - 1.0), size=max(1, int(n / _RATE / 15.0))):
        on = (t >= start) & (t < start + 0.4)
        for pitch in (420.0, 510.0):
            horn[on] += np.sign(np.sin(2 * np.pi * pitch * t[on]))
    return _unit(rumble + hiss * cars + 0.6 * horn)


def _prompts() -> list[np.ndarray]:
    from voiceagent.emulator.recordings import SOUNDS

    clips = []
    for path in sorted(SOUNDS.glob("*.wav"))[:200]:
        try:
            with wave.open(str(path), "rb") as wav:
                if wav.getsampwidth() != 2 or wav.getframerate() != _RATE:
                    continue
                frames = wav.readframes(wav.getnframes())
        except (OSError, wave.Error, EOFError):
            continue
        samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
        if samples.size > _RATE // 2:
            clips.append(samples)
    return clips


def babble(n: int, rng: np.random.Generator) -> np.ndarray:
    """Several talkers at once (real speech when the Asterisk prompts are installed)."""
    clips = _prompts()
    if not clips:  # speech-shaped noise: pink, modulated at syllable rate
        t = np.arange(n) / _RATE
        envelope = 0.3 + np.abs(np.sin(2 * np.pi * 2.0 * t + rng.uniform(0, 6)))
        return _unit(_colored(n, rng, 1.0) * envelope)
    mix = np.zeros(n)
    for _ in range(BABBLE_TALKERS):
        talker = np.zeros(n)
        at = int(rng.integers(0, _RATE))
        while at < n:
            clip = _unit(clips[int(rng.integers(len(clips)))])
            end = min(n, at + clip.size)
            talker[at:end] += clip[: end - at]
            at = end + int(rng.uniform(0.1, 0.6) * _RATE)
        mix += talker * rng.uniform(0.6, 1.0)
    return _unit(mix)


_MAKERS = {"office": office, "street": street, "babble": babble}


@cache
def noise_loop(kind: str, seed: int = 0) -> np.ndarray:
    """``LOOP_S`` seconds of ``kind`` noise at 8 kHz with unit RMS (cached per kind and seed).

    Raises:
        ValueError: an unknown kind.
    """
    maker = _MAKERS.get(kind)
    if maker is None:
        raise ValueError(f"unknown noise {kind!r} (known: {', '.join(KINDS)})")
    loop = maker(int(LOOP_S * _RATE), np.random.default_rng(seed))
    loop.setflags(write=False)
    return loop
