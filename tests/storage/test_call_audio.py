"""A call's stereo WAV: both sides placed by time, valid on disk after every flush."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

from voiceagent.storage.call_audio import AGENT, CALLER, CallAudio, StereoTimeline
from voiceagent.transports.twilio.codec import pcm16_to_ulaw
from voiceagent.transports.twilio.line_format import PCM16_16K


def tone(seconds: float, rate: int, hz: float = 400.0) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return (8000 * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes()


def channels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return samples[0::2], samples[1::2]


def loud_runs(channel: np.ndarray, rate: int = 8000) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of sound (gaps over 50 ms split stretches)."""
    loud = np.flatnonzero(np.abs(channel) > 1000)
    if loud.size == 0:
        return []
    splits = np.flatnonzero(np.diff(loud) > 0.05 * rate)
    starts = [loud[0], *loud[splits + 1]]
    ends = [*loud[splits], loud[-1]]
    pairs = zip(starts, ends, strict=True)
    return [(round(s / rate, 2), round((e + 1) / rate, 2)) for s, e in pairs]


def test_the_timeline_places_audio_by_time_and_leaves_gaps_silent():
    timeline = StereoTimeline(rate=8000)
    frame = tone(0.02, 8000)
    timeline.place(AGENT, 0.0, frame)
    timeline.place(AGENT, 0.0201, frame)  # right after it (within float rounding): appended
    timeline.place(AGENT, 0.5, frame)  # 0.46 s after the last one: silence in between
    assert timeline.end(AGENT) == round(0.52 * 8000)
    stereo = np.frombuffer(timeline.take(None), dtype="<i2")
    assert stereo.size == 2 * round(0.52 * 8000)
    assert not stereo[0::2].any()  # the caller said nothing: silence
    assert loud_runs(stereo[1::2]) == [(0.0, 0.04), (0.5, 0.52)]


def test_a_flush_takes_only_what_both_channels_have_up_to_the_horizon():
    timeline = StereoTimeline(rate=8000)
    timeline.place(CALLER, 0.0, tone(1.0, 8000))
    assert len(timeline.take(0.4, pad=(AGENT,))) == 4 * 3200  # the agent padded, 0.4 s out
    assert timeline.taken == 3200
    assert len(timeline.take(0.2)) == 0  # never backwards


def test_the_wav_is_valid_after_every_write_and_a_stall_is_silence_once(tmp_path: Path):
    """The caller talks 0.5 s, the line stalls 1 s (a flush happens meanwhile), the caller
    talks 0.5 s more: exactly 1 s of silence between, and the agent where it played."""
    audio = CallAudio(tmp_path / "day" / "call.wav")
    chunk = tone(0.02, 16000)
    for n in range(25):
        audio.add_caller(n * 0.02, chunk, 16000, 1)
    audio.add_agent(0.1, pcm16_to_ulaw(tone(0.3, 8000, 1000.0)))
    audio.write(0.75)  # a flush during the stall
    with wave.open(str(audio.path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        assert 0.6 <= wav.getnframes() / 8000 <= 0.75  # less what the resampler holds
    for n in range(25):
        audio.add_caller(1.5 + n * 0.02, chunk, 16000, 1)
    audio.close(end_s=2.2)

    caller, agent = channels(audio.path)
    assert caller.size / 8000 == audio.seconds == 2.2
    assert [(round(a, 1), round(b, 1)) for a, b in loud_runs(caller)] == [(0.0, 0.5), (1.5, 2.0)]
    assert loud_runs(agent) == [(0.1, 0.4)]


def test_stereo_caller_audio_keeps_its_first_channel(tmp_path: Path):
    audio = CallAudio(tmp_path / "call.wav")
    mono = np.frombuffer(tone(0.5, 8000), dtype="<i2")
    stereo = np.column_stack([mono, np.zeros_like(mono)]).ravel().tobytes()
    audio.add_caller(0.0, stereo, 8000, 2)
    audio.close(end_s=0.5)
    caller, _ = channels(audio.path)
    assert np.array_equal(caller, mono)


def test_wideband_agent_audio_is_recorded_at_8khz_in_place_and_without_frame_clicks(
    tmp_path: Path,
):
    """A browser call on 16 kHz PCM16: two agent turns of 20 ms frames, the second cut short."""
    audio = CallAudio(tmp_path / "wide.wav")
    first = tone(0.6, 16000, 440.0)
    frame = PCM16_16K.frame_bytes
    for n, start in enumerate(range(0, len(first), frame)):
        audio.add_agent(0.2 + n * 0.02, first[start : start + frame], PCM16_16K)
    second = tone(0.2, 16000, 440.0)
    for n, start in enumerate(range(0, len(second), frame)):
        audio.add_agent(1.5 + n * 0.02, second[start : start + frame], PCM16_16K)
    audio.close(end_s=2.0)

    _, agent = channels(audio.path)
    assert agent.size == 16000
    assert loud_runs(agent) == [(0.2, 0.8), (1.5, 1.7)]
    # One resampler stream per run: a clean 440 Hz tone, no 50 Hz train of clicks at the edges.
    middle = agent[round(0.25 * 8000) : round(0.75 * 8000)].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(middle)) ** 2
    freqs = np.fft.rfftfreq(middle.size, 1 / 8000)
    tone_power = spectrum[(freqs > 400) & (freqs < 480)].sum()
    assert spectrum[(freqs > 1000)].sum() < 1e-6 * tone_power  # per-frame resampling: 5e-4
    assert abs(np.sqrt(np.mean(middle**2)) - 8000 / math.sqrt(2)) < 200


def test_caller_chunks_joined_into_runs_land_where_they_would_one_by_one(tmp_path: Path):
    """The storage thread resamples back-to-back caller audio in runs, not 20 ms at a time."""
    from voiceagent.storage.call_audio import caller_runs

    t0 = 100.0
    talk = tone(0.4, 16000)
    chunks = []  # (arrived, pcm, rate, channels): 0.4 s of talk, a 0.5 s hole, 0.4 s more
    for n in range(20):
        chunks.append((t0 + 0.02 * (n + 1), talk[n * 640 : (n + 1) * 640], 16000, 1))
    for n in range(20):
        chunks.append((t0 + 0.9 + 0.02 * (n + 1), talk[n * 640 : (n + 1) * 640], 16000, 1))
    runs = caller_runs(chunks, t0)
    assert [(round(start, 3), len(pcm)) for start, pcm, _, _ in runs] == [
        (0.0, 12800),
        (0.9, 12800),
    ]

    one_by_one, joined = CallAudio(tmp_path / "a.wav"), CallAudio(tmp_path / "b.wav")
    for arrived, pcm, rate, ch in chunks:
        one_by_one.add_caller(arrived - len(pcm) / (2 * rate) - t0, pcm, rate, ch)
    for start, pcm, rate, ch in runs:
        joined.add_caller(start, pcm, rate, ch)
    one_by_one.close(2.0)
    joined.close(2.0)
    a, b = channels(tmp_path / "a.wav")[0], channels(tmp_path / "b.wav")[0]
    assert len(a) == len(b) and np.max(np.abs(a.astype(int) - b.astype(int))) <= 2
    assert loud_runs(b) == loud_runs(a)
