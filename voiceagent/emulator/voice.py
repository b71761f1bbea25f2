"""The emulated caller's voice: lines spoken offline with the bundled Piper voice (or espeak-ng).

Text is synthesized once into cached WAVs (slower and lower than the agent's voice), then read
as phone-line audio (8 kHz, through μ-law) with leading and trailing near-silence trimmed, so a
line's audio ends exactly when the caller stops speaking. Other callers (a line condition's
``voice``): ``piper:SCALE`` speaks faster or slower, ``espeak:VOICE`` is Debian's espeak-ng with
one of its accents (``en-gb-scotland``, ``en-029``, ``en-us+f3``…).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from voiceagent.emulator.audio import load_wav_pcm8k
from voiceagent.settings import LocalModelSettings


class _HasText(Protocol):
    text: str


DEFAULT_LENGTH_SCALE = 1.08


def synthesize_texts(
    voice: Any, texts: Iterable[str], cache_dir: Path, *, length_scale: float | None = None
) -> list[Path]:
    """Speak each text with Piper into a cached WAV; blocking (run it in a thread).

    Args:
        voice: a loaded ``piper.PiperVoice``.
        texts: what the caller says, one line each.
        cache_dir: folder of the cached WAVs (named by a hash of the text).
        length_scale: Piper's pace (above 1: slower); the caller's default when None.

    Returns:
        One WAV path per text, in order.
    """
    from piper.config import SynthesisConfig

    cache_dir.mkdir(parents=True, exist_ok=True)
    scale = DEFAULT_LENGTH_SCALE if length_scale is None else length_scale
    config = SynthesisConfig(length_scale=scale, noise_scale=0.6)
    paths = []
    for text in texts:
        key = text if length_scale is None else f"{scale:g}|{text}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        path = cache_dir / f"caller-{digest}.wav"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            with wave.open(str(tmp), "wb") as wav:
                voice.synthesize_wav(text, wav, syn_config=config)
            tmp.replace(path)
        paths.append(path)
    return paths


def espeak_texts(voice: str, texts: Iterable[str], cache_dir: Path) -> list[Path]:
    """Speak each text with espeak-ng's ``voice`` into a cached WAV; blocking.

    Raises:
        ValueError: espeak-ng is not installed, or it failed for this voice.
    """
    program = shutil.which("espeak-ng")
    if program is None:
        raise ValueError("espeak-ng is not installed (apt-get install espeak-ng)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for text in texts:
        digest = hashlib.sha1(f"espeak|{voice}|{text}".encode()).hexdigest()[:12]
        path = cache_dir / f"caller-{digest}.wav"
        if not path.exists():
            tmp = path.with_suffix(".tmp.wav")
            done = subprocess.run(
                [program, "-v", voice, "-s", "150", "-w", str(tmp), text],
                capture_output=True,
                timeout=30,
                check=False,
            )
            if done.returncode != 0 or not tmp.exists():
                error = done.stderr.decode(errors="replace").strip()
                raise ValueError(f"espeak-ng -v {voice} failed: {error or done.returncode}")
            tmp.replace(path)
        paths.append(path)
    return paths


def synthesize_caller_lines(voice: Any, lines: Iterable[_HasText], cache_dir: Path) -> list[Path]:
    """``synthesize_texts`` over objects with a ``text`` (e.g. the demo's lines)."""
    return synthesize_texts(voice, (line.text for line in lines), cache_dir)


def trim_silence(
    pcm16: bytes, rate: int = 8000, *, threshold: int = 300, margin_s: float = 0.03
) -> bytes:
    """Cut leading/trailing near-silence, so a line's audio ends when the caller stops speaking."""
    samples = np.frombuffer(pcm16, dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return pcm16
    margin = int(margin_s * rate)
    start = max(0, int(loud[0]) - margin)
    end = min(samples.size, int(loud[-1]) + margin)
    return samples[start:end].tobytes()


def caller_audio(path: str | Path) -> bytes:
    """A WAV as the caller's phone-line audio, silence trimmed (see ``load_wav_pcm8k``).

    Raises:
        ValueError: not a 16-bit PCM WAV.
        OSError: the file cannot be read.
    """
    return trim_silence(load_wav_pcm8k(path))


async def load_caller_voice(settings: LocalModelSettings, loaded: Any = None) -> Any:
    """The Piper voice the caller speaks with: ``loaded`` when given, else load the bundled one.

    Raises:
        voiceagent.services.local.weights.WeightsError: the Piper voice is not installed.
    """
    if loaded is not None:
        return loaded
    from piper import PiperVoice

    from voiceagent.services.local.weights import resolve_piper_voice

    model, config = resolve_piper_voice(settings)
    return await asyncio.to_thread(PiperVoice.load, str(model), config_path=str(config))
