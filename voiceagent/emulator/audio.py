"""Caller audio as a phone line carries it: 8 kHz mono PCM16 that has been through G.711 μ-law.

The μ-law codec here is a table-driven numpy implementation bit-exact with the classic
``audioop.lin2ulaw`` / ``ulaw2lin`` (Sun G.711 reference code), so the emulator needs no
deprecated ``audioop`` module.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr
from loguru import logger

PHONE_SAMPLE_RATE = 8000
ULAW_SILENCE = 0xFF  # μ-law byte that decodes to 0
_BIAS = 0x84
_CLIP = 8159  # 14-bit magnitude clip of the G.711 reference encoder
_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + _BIAS
    t <<= (u & 0x70) >> 4
    return np.where(u & 0x80, _BIAS - t, t - _BIAS).astype("<i2")


def _build_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit, arithmetic shift like audioop
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _CLIP) + (_BIAS >> 2)
    seg = np.searchsorted(_SEG_END, mag, side="left")
    uval = (seg << 4) | ((mag >> (seg + 1)) & 0x0F)
    encoded = np.where(seg >= 8, 0x7F, uval) ^ mask
    table = np.empty(65536, dtype=np.uint8)
    table[np.arange(-32768, 32768) & 0xFFFF] = encoded  # index by the sample's uint16 bit pattern
    return table


_DECODE = _build_decode_table()
_ENCODE = _build_encode_table()


def ulaw_encode(pcm16: bytes) -> bytes:
    """Encode little-endian PCM16 samples to G.711 μ-law bytes (one byte per sample)."""
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 audio must have an even byte count, got {len(pcm16)}")
    return _ENCODE[np.frombuffer(pcm16, dtype="<u2")].tobytes()


def ulaw_decode(ulaw: bytes) -> bytes:
    """Decode G.711 μ-law bytes to little-endian PCM16 samples."""
    return _DECODE[np.frombuffer(ulaw, dtype=np.uint8)].tobytes()


def phone_line(pcm16: bytes) -> bytes:
    """Pass 8 kHz PCM16 through μ-law and back, as a phone call would."""
    return ulaw_decode(ulaw_encode(pcm16))


def load_wav_pcm8k(path: str | Path) -> bytes:
    """Read a 16-bit PCM WAV (mono or multi-channel, any rate) as phone-line audio.

    Channels are averaged, the signal is resampled to 8 kHz with soxr and sent through
    μ-law and back.

    Args:
        path: the WAV file.

    Returns:
        Mono PCM16 little-endian at 8 kHz.

    Raises:
        ValueError: the file is not a 16-bit PCM WAV.
        OSError: the file cannot be read.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as e:
        logger.warning(f"caller audio {path}: not a PCM WAV ({e})")
        raise ValueError(f"{path}: not a PCM WAV file ({e})") from e
    if width != 2:
        logger.warning(f"caller audio {path}: {8 * width}-bit samples, need 16-bit")
        raise ValueError(f"{path}: expected 16-bit PCM samples, got {8 * width}-bit")
    samples = np.frombuffer(frames[: len(frames) - len(frames) % (2 * channels)], dtype="<i2")
    mono = samples.reshape(-1, channels).astype(np.float32).mean(axis=1) / 32768.0
    if rate != PHONE_SAMPLE_RATE and mono.size:
        mono = soxr.resample(mono, rate, PHONE_SAMPLE_RATE, quality="HQ")
    pcm = np.clip(np.round(mono * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return phone_line(pcm)


def write_wav(path: str | Path, pcm16: bytes, sample_rate: int) -> None:
    """Write mono little-endian PCM16 to a WAV file (parent folders are created)."""
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 audio must have an even byte count, got {len(pcm16)}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm16)
