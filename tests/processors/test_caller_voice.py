"""The caller's voice stage: pipecat's Silero VAD on one shared session, and the sound onset."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer

from voiceagent.processors.caller_voice import SharedSileroVAD, SoundOnset, silero_session

RATE = 16000
N = RATE // 50  # one 20 ms frame
CLIP = Path("/usr/share/asterisk/sounds/en/agent-pass.wav")


def frame(amplitude: float) -> bytes:
    t = np.arange(N) / RATE
    return (np.sin(2 * np.pi * 200 * t) * amplitude).astype("<i2").tobytes()


def test_every_call_shares_one_onnx_session_and_keeps_its_own_state():
    a, b = SharedSileroVAD(), SharedSileroVAD()
    assert a._model.session is b._model.session is silero_session()
    assert a._model._state is not b._model._state


@pytest.mark.skipif(not CLIP.exists(), reason="Debian asterisk-core-sounds-en-wav not installed")
def test_the_shared_session_hears_exactly_what_pipecats_own_analyzer_hears():
    with wave.open(str(CLIP)) as w:
        pcm8 = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    pcm = np.repeat(pcm8, 2).astype(np.int16).tobytes()  # a human prompt, at 16 kHz
    ours, theirs = SharedSileroVAD(), SileroVADAnalyzer()
    ours.set_sample_rate(RATE)
    theirs.set_sample_rate(RATE)
    window = 512 * 2
    chunks = [pcm[i : i + window] for i in range(0, len(pcm) - window, window)]
    mine = [np.asarray(ours.voice_confidence(c)).item() for c in chunks]
    pipecat = [np.asarray(theirs.voice_confidence(c)).item() for c in chunks]
    assert mine == pipecat
    assert max(mine) > 0.9  # it is speech


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
