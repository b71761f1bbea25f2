"""μ-law codec and stateful resampler: the audio a phone caller hears and sends."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pipecat.audio.resamplers.soxr_stream_resampler import SOXRStreamAudioResampler

from voiceagent.transports.twilio.codec import (
    ULAW_SILENCE,
    StreamResampler,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)

from .conftest import tone_pcm

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference G.711 implementation (tests only)


def test_known_g711_values() -> None:
    # Decoding: the 16-bit expansion of the reference table.
    codes = bytes([0x00, 0x0F, 0x7E, 0x7F, 0x80, 0x8F, 0xFE, 0xFF])
    pcm = np.frombuffer(ulaw_to_pcm16(codes), dtype="<i2").tolist()
    assert pcm == [-32124, -16764, -8, 0, 32124, 16764, 8, 0]
    # Encoding: silence is 0xFF, full scale clips to the extreme codes.
    samples = np.array([0, 8, -8, 32767, -32768, 1000, -1000], dtype="<i2").tobytes()
    assert list(pcm16_to_ulaw(samples)) == [0xFF, 0xFE, 0x7E, 0x80, 0x00, 0xCE, 0x4E]
    assert ULAW_SILENCE == 0xFF


def test_encoder_matches_reference_for_every_16_bit_sample() -> None:
    every = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert pcm16_to_ulaw(every) == audioop.lin2ulaw(every, 2)


def test_decoder_matches_reference_for_every_code() -> None:
    codes = bytes(range(256))
    assert ulaw_to_pcm16(codes) == audioop.ulaw2lin(codes, 2)


def test_round_trip_is_stable_and_within_quantisation_error() -> None:
    codes = bytes(range(256))
    # Decoding then re-encoding gives the same code (except the two zero codes).
    again = pcm16_to_ulaw(ulaw_to_pcm16(codes))
    assert [c for c, a in zip(codes, again, strict=True) if c != a] == [0x7F]
    # A caller's voice-level tone survives with the error bounded by segment size (~3%).
    pcm = np.frombuffer(tone_pcm(100, 8000, amplitude=12000), dtype="<i2").astype(int)
    back = np.frombuffer(ulaw_to_pcm16(pcm16_to_ulaw(tone_pcm(100, 8000, amplitude=12000))), "<i2")
    assert np.max(np.abs(back - pcm)) <= 0.035 * 12000 + 16


def test_odd_length_pcm_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="even length"):
        pcm16_to_ulaw(b"\x00\x01\x02")


def _stream(resampler: StreamResampler, pcm: bytes, chunk_bytes: int) -> bytes:
    out = [resampler.resample(pcm[i : i + chunk_bytes]) for i in range(0, len(pcm), chunk_bytes)]
    return b"".join(out) + resampler.flush()


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000), (22050, 8000)])
def test_chunked_resampling_equals_one_shot(in_rate: int, out_rate: int) -> None:
    # Caller audio arrives in 20 ms chunks; the result must equal resampling it all at once.
    pcm = tone_pcm(1000, in_rate, freq=300, amplitude=10000)
    chunk = in_rate // 50 * 2
    chunked = np.frombuffer(_stream(StreamResampler(in_rate, out_rate), pcm, chunk), "<i2")
    whole = np.frombuffer(_stream(StreamResampler(in_rate, out_rate), pcm, len(pcm)), "<i2")
    assert abs(len(chunked) - len(whole)) <= 2
    n = min(len(chunked), len(whole))
    assert np.max(np.abs(chunked[:n].astype(int) - whole[:n].astype(int))) <= 2
    assert abs(len(chunked) - out_rate) <= out_rate // 100


def test_chunked_resampling_has_no_clicks_at_chunk_boundaries() -> None:
    # A 300 Hz tone at 8 kHz → 16 kHz: sample-to-sample steps stay those of a smooth sine.
    rs = StreamResampler(8000, 16000)
    pcm = tone_pcm(2000, 8000, freq=300, amplitude=10000)
    out = np.frombuffer(_stream(rs, pcm, 320), "<i2").astype(int)
    steady = out[800:-800]
    max_step = 10000 * 2 * np.pi * 300 / 16000  # derivative bound of the sine per sample
    assert np.max(np.abs(np.diff(steady))) <= max_step * 1.1


def test_stateless_resampling_would_click() -> None:
    # The same audio through a fresh filter per 20 ms chunk breaks the click check above:
    # proof that the statefulness is doing the work (and that the check can fail).
    pcm = tone_pcm(2000, 8000, freq=300, amplitude=10000)
    fresh = b"".join(
        _stream(StreamResampler(8000, 16000), pcm[i : i + 320], 320)
        for i in range(0, len(pcm), 320)
    )
    out = np.frombuffer(fresh, "<i2").astype(int)[800:-800]
    max_step = 10000 * 2 * np.pi * 300 / 16000
    assert np.max(np.abs(np.diff(out))) > max_step * 1.1


def test_equal_rates_pass_audio_through_untouched() -> None:
    rs = StreamResampler(8000, 8000)
    pcm = tone_pcm(20, 8000)
    assert rs.resample(pcm) is pcm
    assert rs.flush() == b""


def test_reset_forgets_history() -> None:
    rs = StreamResampler(16000, 8000)
    loud = tone_pcm(200, 16000, amplitude=20000)
    rs.resample(loud)
    rs.reset()
    silence = bytes(3200)
    out = np.frombuffer(rs.resample(silence) + rs.flush(), "<i2")
    assert len(out) > 0 and np.max(np.abs(out)) <= 2  # only dither left
    # Without the reset, the held tone leaks into what follows.
    kept = StreamResampler(16000, 8000)
    kept.resample(loud)
    leaked = np.frombuffer(kept.resample(silence), "<i2")
    assert np.max(np.abs(leaked)) > 1000


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(0, 8000)


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "quality"), [(8000, 16000, "QQ"), (22050, 8000, "MQ")]
)
async def test_the_sync_resampler_hears_what_pipecats_would(
    in_rate: int, out_rate: int, quality: str
) -> None:
    # Kept only where pipecat's coroutine API does not fit (see its docstring): same stream,
    # same samples, chunk by chunk and at the flush.
    pcm = tone_pcm(500, in_rate, freq=440, amplitude=12000)
    chunk = in_rate // 50 * 2
    ours = StreamResampler(in_rate, out_rate, quality=quality)
    theirs = SOXRStreamAudioResampler(quality=quality, clear_after_secs=None)
    pairs = []
    for i in range(0, len(pcm), chunk):
        part = pcm[i : i + chunk]
        pairs.append((ours.resample(part), await theirs.resample(part, in_rate, out_rate)))
    pairs.append((ours.flush(), await theirs.flush()))
    for mine, pipecats in pairs:
        a, b = np.frombuffer(mine, "<i2").astype(int), np.frombuffer(pipecats, "<i2").astype(int)
        assert len(a) == len(b)
        assert len(a) == 0 or np.max(np.abs(a - b)) <= 2  # equal up to soxr's dither
