"""Caller audio as a phone line carries it: 8 kHz mono PCM16 that has been through G.711 μ-law.

The μ-law codec is the transport's (table-driven numpy, bit-exact with the G.711 reference).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr
from loguru import logger

from voiceagent.transports.twilio.codec import pcm16_to_ulaw, ulaw_to_pcm16

PHONE_SAMPLE_RATE = 8000
ULAW_SILENCE = 0xFF  # μ-law byte that decodes to 0


def ulaw_encode(pcm16: bytes) -> bytes:
    """Encode little-endian PCM16 samples to G.711 μ-law bytes (one byte per sample)."""
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 audio must have an even byte count, got {len(pcm16)}")
    return pcm16_to_ulaw(pcm16)


ulaw_decode = ulaw_to_pcm16


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
