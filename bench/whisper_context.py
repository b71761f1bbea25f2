"""Whisper tiny.en: full 30 s window vs short-context decoding, WER and time per decode.

    .venv/bin/python bench/whisper_context.py [--n 40]

Uses Debian's asterisk-core-sounds-en-wav phone prompts (8 kHz) with their published transcripts.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import sys
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from voiceagent.services.local.weights import resolve_whisper_model  # noqa: E402
from voiceagent.services.local.whisper_stt import WhisperTranscriber  # noqa: E402
from voiceagent.settings import LocalModelSettings  # noqa: E402
from voiceagent.transports.twilio.codec import StreamResampler  # noqa: E402

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
NUMBERS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}


def words(text: str) -> list[str]:
    return [NUMBERS.get(w, w) for w in re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()]


def edits(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, h in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h))
    return row[-1]


def prompts(n: int) -> list[tuple[Path, str]]:
    table = {}
    with gzip.open(TRANSCRIPTS, "rt", errors="replace") as lines:
        for line in lines:
            if ":" in line and not line.startswith(";"):
                key, text = line.split(":", 1)
                path = SOUNDS / f"{key.strip()}.wav"
                if path.exists() and len(text.split()) >= 4:
                    table[path] = text.strip()
    random.seed(1)
    return random.sample(sorted(table.items()), min(n, len(table)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()
    if not TRANSCRIPTS.exists():
        sys.exit("needs Debian's asterisk-core-sounds-en-wav and asterisk-core-sounds-en")
    model_dir = resolve_whisper_model(LocalModelSettings())
    clips = []
    for path, text in prompts(args.n):
        with wave.open(str(path)) as w:
            pcm = w.readframes(w.getnframes())
            clips.append((StreamResampler(w.getframerate(), 16000).resample(pcm), words(text)))
    for short in (False, True):
        transcriber = WhisperTranscriber(model_dir, short_context=short)
        transcriber.transcribe(clips[0][0])
        errors = total = 0
        elapsed = 0.0
        for audio, ref in clips:
            t = time.perf_counter()
            hyp = transcriber.transcribe(audio)
            elapsed += time.perf_counter() - t
            errors += edits(ref, words(hyp))
            total += len(ref)
        label = "short-context" if short else "full 30 s   "
        print(
            f"{label}  WER {100 * errors / total:4.1f} %  mean decode {elapsed / len(clips):.3f} s"
            f"  ({len(clips)} prompts, {total} words)"
        )


if __name__ == "__main__":
    main()
