"""Caller speech for benchmarks and tests: human phone recordings and synthesized voices.

- Human: Debian's ``asterisk-core-sounds-en-wav`` prompts (CC-BY-SA-3.0, 8 kHz recordings of
  one person) with their published transcripts (``asterisk-core-sounds-en``). Prompts and
  single digits are joined with natural gaps into caller lines ("the number I have is 5 5 5,
  1 2 3 4").
- Synthesized: espeak-ng voices (robotic, several accents) and Piper (``voiceagent``'s
  bundled voice, via ``voiceagent.emulator.voice``).

Everything comes back as 8 kHz PCM16 that went through μ-law, as a phone line carries it,
with leading and trailing silence trimmed so a line's audio ends when the caller stops.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from voiceagent.emulator.audio import PHONE_SAMPLE_RATE, load_wav_pcm8k

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
TRIM_FRAME = 80  # 10 ms at 8 kHz
TRIM_DB = -34.0  # frames this far below the loudest frame are silence


class SpeechUnavailable(RuntimeError):
    """A speech source (Debian package or program) is not installed."""


def trim_silence(pcm16: bytes) -> bytes:
    """Cut leading and trailing 10 ms frames quieter than ``TRIM_DB`` below the loudest."""
    samples = np.frombuffer(pcm16, dtype="<i2")
    frames = len(samples) // TRIM_FRAME
    if frames == 0:
        return pcm16
    blocks = samples[: frames * TRIM_FRAME].reshape(frames, TRIM_FRAME).astype(np.float64)
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (TRIM_DB / 20))
    if loud.size == 0:
        return b""
    return samples[loud[0] * TRIM_FRAME : (loud[-1] + 1) * TRIM_FRAME].tobytes()


def silence(seconds: float) -> bytes:
    """Digital silence at 8 kHz."""
    return bytes(2 * int(round(seconds * PHONE_SAMPLE_RATE)))


@cache
def asterisk_transcripts() -> dict[str, str]:
    """Prompt name (``digits/5``, ``hello``) → its published transcript.

    Raises:
        SpeechUnavailable: the Debian packages are not installed.
    """
    if not TRANSCRIPTS.exists() or not SOUNDS.is_dir():
        raise SpeechUnavailable(
            "human phone prompts need Debian's asterisk-core-sounds-en-wav and "
            "asterisk-core-sounds-en (apt-get install them)"
        )
    out = {}
    with gzip.open(TRANSCRIPTS, "rt", errors="replace") as lines:
        for line in lines:
            if ":" in line and not line.startswith(";"):
                key, text = (part.strip() for part in line.split(":", 1))
                out[key] = text
    return out


def asterisk_prompt(name: str) -> tuple[bytes, str]:
    """One human prompt, trimmed: ``(pcm8k, transcript)``.

    Raises:
        SpeechUnavailable: the packages, or this prompt, are missing.
    """
    text = asterisk_transcripts().get(name)
    path = SOUNDS / f"{name}.wav"
    if text is None or not path.exists():
        raise SpeechUnavailable(f"no Asterisk prompt {name!r} in {SOUNDS}")
    return trim_silence(load_wav_pcm8k(path)), text


def asterisk_line(parts: Sequence[str | float]) -> bytes:
    """Prompts joined into one caller line; a number in ``parts`` is a gap in seconds.

    ``["vm-num-i-have", 0.35, "digits/5", 0.12, "digits/5"]`` is "the number I have is 5 5"
    spoken with a 350 ms pause after "is" and 120 ms between the digits.
    """
    pieces = []
    for part in parts:
        pieces.append(silence(part) if isinstance(part, float | int) else asterisk_prompt(part)[0])
    return b"".join(pieces)


def dictated_digits(groups: Sequence[str], *, digit_gap_s: float = 0.12, group_gap_s: float = 0.45):
    """Asterisk prompt parts for digits read out in groups ("5 5 5, 1 2 3 4")."""
    parts: list[str | float] = []
    for g, group in enumerate(groups):
        if g:
            parts.append(group_gap_s)
        for d, digit in enumerate(group):
            if d:
                parts.append(digit_gap_s)
            parts.append(f"digits/{digit}")
    return parts


def espeak_line(text: str, cache_dir: Path, *, voice: str = "en-us", speed: int = 150) -> bytes:
    """``text`` spoken by espeak-ng (cached WAV), as phone-line audio, trimmed.

    Raises:
        SpeechUnavailable: espeak-ng is not installed.
    """
    if shutil.which("espeak-ng") is None:
        raise SpeechUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    digest = hashlib.sha1(f"{voice}|{speed}|{text}".encode()).hexdigest()[:12]
    path = cache_dir / f"espeak-{digest}.wav"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.wav")
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(tmp), text],
            check=True,
            capture_output=True,
        )
        tmp.replace(path)
    return trim_silence(load_wav_pcm8k(path))
