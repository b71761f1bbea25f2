"""Human speech for emulated callers: Debian's Asterisk prompts with their published transcripts.

``asterisk-core-sounds-en-wav`` holds ≈ 360 real 8 kHz phone prompts of one speaker
(CC-BY-SA-3.0) and ``asterisk-core-sounds-en`` their words. A scenario line names clips as
``asterisk:NAME`` (``asterisk:hello``, ``asterisk:digits/5``); several clips are joined with a
short natural gap into one caller line ("Telephone number. 5 5 5, 0 1 2 3"), and the words
said are the clips' transcripts. The babble noise of ``voiceagent.emulator.noise`` mixes them.
"""

from __future__ import annotations

import gzip
import re
from functools import cache
from pathlib import Path

import numpy as np

from voiceagent.emulator.audio import PHONE_SAMPLE_RATE
from voiceagent.emulator.voice import caller_audio

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
SCHEME = "asterisk:"
JOIN_GAP_S = 0.25
"""Silence between two joined clips (a natural gap, shorter than a turn-ending pause)."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9_/\-]*$")


class RecordingUnavailable(ValueError):
    """An Asterisk clip is not installed (or its name is wrong)."""


def is_recording(reference: str) -> bool:
    """Whether an ``audio`` reference names Asterisk clips rather than a WAV file."""
    return reference.startswith(SCHEME)


def clip_path(reference: str) -> Path:
    """The WAV of ``asterisk:NAME``.

    Raises:
        RecordingUnavailable: a malformed name, or the clip is not installed.
    """
    name = reference[len(SCHEME) :] if is_recording(reference) else reference
    if not _NAME.match(name) or ".." in name:
        raise RecordingUnavailable(f"{reference!r}: not an Asterisk prompt name")
    path = SOUNDS / f"{name}.wav"
    if not path.is_file():
        raise RecordingUnavailable(
            f"{reference!r}: no {path} (apt-get install asterisk-core-sounds-en-wav)"
        )
    return path


@cache
def transcripts() -> dict[str, str]:
    """Prompt name → its published words (empty when the transcripts are not installed)."""
    try:
        text = gzip.decompress(TRANSCRIPTS.read_bytes()).decode("utf-8", "replace")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        name, sep, words = line.partition(": ")
        if sep and not name.startswith(";"):
            out[name.strip()] = words.strip()
    return out


def clip_words(reference: str) -> str:
    """What clip ``asterisk:NAME`` says ("" when unknown; a digit clip says its digit)."""
    name = reference[len(SCHEME) :]
    if name.startswith("digits/") and name[7:].isdigit():
        return name[7:]
    words = transcripts().get(name, "")
    return "" if words.startswith("[") else words


def joined_clips(references: list[str], gap_s: float = JOIN_GAP_S) -> bytes:
    """The clips, each as phone-line audio with its silence trimmed, joined by ``gap_s``.

    Raises:
        RecordingUnavailable: a clip is not installed.
        ValueError: a clip is not a usable WAV.
    """
    gap = np.zeros(round(gap_s * PHONE_SAMPLE_RATE), dtype="<i2").tobytes()
    parts = [caller_audio(clip_path(ref)) for ref in references]
    return gap.join(parts)


def joined_words(references: list[str]) -> str:
    """The words of joined clips (digits run together as a caller dictates them)."""
    return " ".join(w for w in (clip_words(r) for r in references) if w)
