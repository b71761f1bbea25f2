"""Caller audio: WAV files become 8 kHz phone-line audio; μ-law matches G.711."""

import math
import warnings
import wave

import numpy as np
import pytest

from voiceagent.emulator.audio import (
    load_wav_pcm8k,
    phone_line,
    ulaw_decode,
    ulaw_encode,
    write_wav,
)


def write_test_wav(path, rate: int, channels: int, seconds: float, freq: float, width: int = 2):
    n = round(rate * seconds)
    t = np.arange(n) / rate
    mono = (10000 * np.sin(2 * math.pi * freq * t)).astype("<i2")
    frames = np.repeat(mono[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        if width == 2:
            wav.writeframes(frames.tobytes())
        else:
            wav.writeframes((frames // 256 + 128).astype(np.uint8).tobytes())


def dominant_hz(pcm16: bytes, rate: int = 8000) -> float:
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


def test_mulaw_codec_is_bit_exact_with_the_g711_reference():
    audioop = pytest.importorskip("audioop")
    every_sample = np.arange(-32768, 32768, dtype="<i2").tobytes()
    every_code = bytes(range(256))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ulaw_encode(every_sample) == audioop.lin2ulaw(every_sample, 2)
        assert ulaw_decode(every_code) == audioop.ulaw2lin(every_code, 2)


def test_mulaw_silence_and_round_trip():
    assert ulaw_decode(b"\xff") == b"\x00\x00"
    assert ulaw_encode(b"\x00\x00") == b"\xff"
    loud = np.array([1000, -1000, 20000, -20000], dtype="<i2")
    back = np.frombuffer(phone_line(loud.tobytes()), dtype="<i2")
    assert np.all(np.abs(back - loud) <= np.abs(loud) * 0.04)
    with pytest.raises(ValueError, match="even"):
        ulaw_encode(b"\x00")


def test_stereo_44k_wav_becomes_mono_8k_phone_audio(tmp_path):
    path = tmp_path / "caller.wav"
    write_test_wav(path, rate=44100, channels=2, seconds=1.0, freq=700.0)
    pcm = load_wav_pcm8k(path)
    assert len(pcm) == 2 * 8000
    assert dominant_hz(pcm) == pytest.approx(700.0, abs=2.0)
    assert ulaw_decode(ulaw_encode(pcm)) == pcm  # already μ-law-representable


def test_8k_mono_wav_keeps_its_length(tmp_path):
    path = tmp_path / "line.wav"
    write_test_wav(path, rate=8000, channels=1, seconds=0.5, freq=400.0)
    assert len(load_wav_pcm8k(path)) == 2 * 4000


def test_8_bit_wav_is_refused_clearly(tmp_path):
    path = tmp_path / "old.wav"
    write_test_wav(path, rate=8000, channels=1, seconds=0.1, freq=400.0, width=1)
    with pytest.raises(ValueError, match="16-bit"):
        load_wav_pcm8k(path)


def test_not_a_wav_is_refused_clearly(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio at all")
    with pytest.raises(ValueError, match="not a PCM WAV"):
        load_wav_pcm8k(path)


def test_write_wav_round_trips(tmp_path):
    pcm = np.arange(-100, 100, dtype="<i2").tobytes()
    out = tmp_path / "sub" / "heard.wav"
    write_wav(out, pcm, 8000)
    with wave.open(str(out), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.readframes(wav.getnframes()) == pcm
