"""The VAD's volume, measured as a stream: it reads what pipecat's tracker reads."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import soxr
from pipecat.audio.volume import AudioVolumeTracker

from voiceagent.processors.loudness import StreamLoudness

CLIP = Path("/usr/share/asterisk/sounds/en/agent-pass.wav")
needs_clip = pytest.mark.skipif(not CLIP.exists(), reason="asterisk-core-sounds-en-wav missing")


def caller(rate: int) -> np.ndarray:
    """Half a second of silence, a human prompt, line hiss, the prompt 18 dB quieter."""
    with wave.open(str(CLIP)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32)
        speech = soxr.resample(pcm, w.getframerate(), rate).astype(np.int16)
    hiss = np.random.default_rng(3).normal(0, 40, rate).astype(np.int16)
    return np.concatenate([np.zeros(rate // 2, np.int16), speech, hiss, speech // 8])


def windows(pcm: np.ndarray, size: int) -> list[bytes]:
    return [pcm[i : i + size].tobytes() for i in range(0, len(pcm) - size + 1, size)]


@needs_clip
@pytest.mark.parametrize(("rate", "window"), [(16000, 512), (8000, 256)])
def test_every_vad_window_reads_the_volume_pipecats_tracker_reads(rate, window):
    ours, pipecats = StreamLoudness(), AudioVolumeTracker()
    read_ours, read_pipecats = [], []
    for chunk in windows(caller(rate), window):
        ours.update(chunk, rate)
        pipecats.update(chunk, rate)
        read_ours.append(ours.volume)
        read_pipecats.append(pipecats.volume)
    gap = np.abs(np.array(read_ours) - np.array(read_pipecats))
    assert gap.max() < 0.002
    assert max(read_ours) > 0.6 and min(read_ours) == 0.0  # speech is loud, the start is silent
    hiss = StreamLoudness()
    hiss.update(np.random.default_rng(4).normal(0, 40, rate).astype(np.int16).tobytes(), rate)
    assert 0.0 < hiss.volume < 0.6  # line hiss is heard, below the VAD's gate


@needs_clip
def test_the_volume_does_not_depend_on_how_the_audio_is_cut():
    pcm = caller(16000)
    pcm = pcm[: len(pcm) // 2560 * 2560]  # whole VAD windows and whole 20 ms frames
    by_window, by_frame = StreamLoudness(), StreamLoudness()
    for chunk in windows(pcm, 512):
        by_window.update(chunk, 16000)
    for chunk in windows(pcm, 320):
        by_frame.update(chunk, 16000)
    assert by_frame.volume == pytest.approx(by_window.volume, abs=1e-9)


def test_the_first_400_ms_read_zero_as_pipecats_do():
    meter = StreamLoudness()
    loud = (np.sin(np.arange(320) / 3) * 8000).astype(np.int16).tobytes()
    for _ in range(19):  # 380 ms
        meter.update(loud, 16000)
        assert meter.volume == 0.0
    meter.update(loud, 16000)
    assert meter.volume > 0.6


def test_digital_silence_and_audio_below_the_absolute_gate_read_zero():
    meter = StreamLoudness()
    meter.update(np.zeros(8000, np.int16).tobytes(), 16000)
    assert meter.volume == 0.0
    meter.update(np.ones(8000, np.int16).tobytes(), 16000)  # -90 dBFS, under -70 LUFS
    assert meter.volume == 0.0


def test_a_new_sample_rate_starts_the_window_over():
    meter = StreamLoudness()
    loud = (np.sin(np.arange(8000) / 3) * 8000).astype(np.int16).tobytes()
    meter.update(loud, 16000)
    assert meter.volume > 0.6
    meter.update(loud[:1600], 8000)  # 100 ms at the new rate
    assert meter.volume == 0.0
    meter.reset()
    meter.update(loud, 8000)
    assert meter.volume > 0.6
