"""The caller's voice stage: the sound onset (Silero: test_silero.py)."""

from __future__ import annotations

import numpy as np
import pytest

from voiceagent.emulator.conditions import BUILTIN
from voiceagent.emulator.line import PhoneLine
from voiceagent.processors.caller_voice import SoundOnset
from voiceagent.transports.twilio.codec import StreamResampler, pcm16_to_ulaw, ulaw_to_pcm16

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
    assert changes == [None] * 400  # from the first frame: the hum is the line's floor


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


@pytest.mark.parametrize("noise", ["office", "street"])
@pytest.mark.parametrize("digital_silence_frames", [0, 5])
def test_a_noisy_line_from_pickup_is_not_the_caller_speaking_and_speech_still_is(
    noise, digital_silence_frames
):
    """The call opens (after 200 ms of digital silence, or at once) on office (street) noise at
    15 (10) dB under the caller's voice; the caller says nothing for 3 s, then speaks. Until
    then the line is never "sounding" (each sound pauses the agent's greeting); the caller's
    first word turns it loud."""
    condition = BUILTIN[noise]
    line = PhoneLine(condition, speech_level_rms=3000.0)
    onset, resample = SoundOnset(), StreamResampler(8000, RATE, quality="QQ")
    for _ in range(digital_silence_frames):
        assert onset.update(resample.resample(ulaw_to_pcm16(b"\xff" * 320)), RATE) is None
    words = np.tile(np.sin(2 * np.pi * 220 * np.arange(4000) / 8000) * 4200, 3)
    words[2000:4000] = 0.0  # "word", pause, "word"
    speech = pcm16_to_ulaw(words.astype("<i2").tobytes())
    quiet = b"\xff" * 320  # 40 ms of μ-law silence: the caller says nothing
    changes = []
    for i in range(75):  # 3 s of the line's noise alone, in the transport's 40 ms frames
        t = 0.04 * (i + 1)
        changes.append(onset.update(resample.resample(ulaw_to_pcm16(line.carry(quiet, t))), RATE))
    assert changes == [None] * 75 and not onset.sounding
    heard = []
    for i in range(0, len(speech), 320):
        t = 3.0 + 0.04 * (i // 320 + 1)
        chunk = line.carry(speech[i : i + 320], t)
        heard.append(onset.update(resample.resample(ulaw_to_pcm16(chunk)), RATE))
    assert heard[:2].count(True) == 1  # loud within the first 80 ms of the caller's voice
