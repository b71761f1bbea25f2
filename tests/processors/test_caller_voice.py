"""The caller's voice stage: the sound onset (Silero: test_silero.py)."""

from __future__ import annotations

import numpy as np

from voiceagent.processors.caller_voice import SoundOnset

RATE = 16000
N = RATE // 50  # one 20 ms frame


def frame(amplitude: float) -> bytes:
    t = np.arange(N) / RATE
    return (np.sin(2 * np.pi * 200 * t) * amplitude).astype("<i2").tobytes()


def test_the_caller_resumes_and_the_line_turns_loud_in_two_frames():
    onset = SoundOnset()
    for _ in range(20):
        assert onset.update(frame(20)) is None  # a quiet line
    assert onset.update(frame(3000)) is None
    assert onset.update(frame(3000)) is True  # 40 ms after the first sound
    for _ in range(4):
        assert onset.update(frame(20)) is None
    assert onset.update(frame(20)) is False  # 100 ms of quiet end it


def test_a_click_or_a_steady_hum_is_not_a_sound():
    onset = SoundOnset()
    assert onset.update(frame(4000)) is None  # one loud frame: a click
    assert onset.update(frame(20)) is None
    hum = SoundOnset()
    changes = [hum.update(frame(600)) for _ in range(400)]  # 8 s of a steady, quiet hum
    assert changes.count(True) <= 1 and changes[-50:] == [None] * 50
