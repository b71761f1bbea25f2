"""The beep detector: a steady 0.7-2.5 kHz tone is a beep; speech, DTMF, noise and hums are not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soxr

from voiceagent.emulator.audio import load_wav_pcm8k, ulaw_encode
from voiceagent.processors.beep import Beep, BeepDetector, BeepParams
from voiceagent.transports.twilio.codec import ulaw_to_pcm16

RATE = 16000  # the pipeline's rate: the caller's 8 kHz μ-law, decoded and resampled
FRAME = RATE // 50  # 20 ms


def phone_line(pcm8k: np.ndarray) -> bytes:
    """8 kHz samples through Twilio's μ-law, then up to the pipeline's 16 kHz."""
    decoded = ulaw_to_pcm16(ulaw_encode(pcm8k.astype("<i2").tobytes()))
    samples = np.frombuffer(decoded, dtype="<i2").astype(np.float32) / 32768.0
    return (soxr.resample(samples, 8000, RATE) * 32767).astype("<i2").tobytes()


def tone(seconds: float, *hz: float, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(round(seconds * 8000)) / 8000
    return sum(amplitude / len(hz) * np.sin(2 * np.pi * f * t) for f in hz)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * 8000))


def beeps_in(pcm16k: bytes, params: BeepParams | None = None) -> list[tuple[float, Beep]]:
    detector = BeepDetector(params)
    found = []
    for n, start in enumerate(range(0, len(pcm16k) - 2 * FRAME + 1, 2 * FRAME)):
        beep = detector.feed(pcm16k[start : start + 2 * FRAME], RATE)
        if beep is not None:
            found.append(((n + 1) * 0.02, beep))
    return found


@pytest.mark.parametrize("hz", [850.0, 1000.0, 1400.0, 2000.0])
def test_a_machine_beep_is_found_with_its_start_and_end(hz: float):
    audio = phone_line(np.concatenate([quiet(0.4), tone(0.5, hz), quiet(0.4)]))
    (at_start, started), (at_end, ended) = beeps_in(audio)
    assert not started.ended and ended.ended
    assert abs(started.hz - hz) <= 40.0 and abs(ended.hz - hz) <= 40.0
    assert 0.55 <= at_start <= 0.62  # 150 ms into the tone
    assert 0.88 <= at_end <= 0.96 and 0.45 <= ended.duration_s <= 0.55


def test_too_short_too_low_too_quiet_or_two_tones_is_no_beep():
    assert beeps_in(phone_line(np.concatenate([tone(0.1, 1000.0), quiet(0.3)]))) == []
    assert beeps_in(phone_line(np.concatenate([tone(0.6, 440.0), quiet(0.3)]))) == []  # a hum
    assert (
        beeps_in(phone_line(np.concatenate([tone(0.6, 1000.0, amplitude=200), quiet(0.3)]))) == []
    )
    assert beeps_in(phone_line(np.concatenate([tone(0.6, 697.0, 1209.0), quiet(0.3)]))) == []  # "1"


def test_line_noise_is_no_beep():
    noise = np.random.default_rng(7).normal(0.0, 3000.0, 8000 * 2)
    assert beeps_in(phone_line(noise)) == []


def test_a_recorded_greeting_in_words_is_no_beep(tmp_path: Path):
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path / "greeting.wav"
    text = (
        "Hi, you have reached the Johnsons. We are not home right now, so leave your name "
        "and number after the tone and we will call you back. Beeeeep."
    )
    subprocess.run([espeak, "-s", "150", "-w", str(wav), text], check=True, timeout=30)
    speech = np.frombuffer(load_wav_pcm8k(wav), dtype="<i2").astype(np.float64)
    assert beeps_in(phone_line(speech)) == []
    # The same greeting followed by the real thing: one beep, after the words.
    with_beep = np.concatenate([speech, quiet(0.5), tone(0.4, 1000.0), quiet(0.3)])
    found = beeps_in(phone_line(with_beep))
    assert [beep.ended for _, beep in found] == [False, True]
    assert found[0][0] > len(speech) / 8000
