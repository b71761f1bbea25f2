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


def test_in_40_ms_frames_the_sound_is_judged_every_20_ms():
    """The transport gathers caller audio into 40 ms frames: the caller starts speaking halfway
    through one; the line turns loud after two loud 20 ms blocks, dated from the sound's start."""
    onset = SoundOnset()
    for _ in range(10):
        assert onset.update(frame(20) + frame(20)) is None
    assert onset.update(frame(20) + frame(3000)) is None  # the sound starts 20 ms in
    assert onset.update(frame(3000) + frame(3000)) is True
    assert onset.since_s == 0.06  # it began 60 ms before the end of this frame
    assert onset.update(frame(20) + frame(20)) is None
    assert onset.update(frame(20) + frame(20)) is None
    assert onset.update(frame(20) + frame(20)) is False  # the 5th quiet block
    assert round(onset.since_s, 3) == 0.12  # 5 blocks + the one after it in the frame


def test_a_40_ms_click_is_still_a_click():
    onset = SoundOnset()
    assert onset.update(frame(4000) + frame(20)) is None  # one loud block
    assert onset.update(frame(20) + frame(20)) is None
