"""How the end-of-turn model (pipecat's bundled Smart Turn v3) judges real human phone speech.

    .venv/bin/python bench/end_of_turn.py [--n 120]

Debian's asterisk-core-sounds-en-wav prompts are human recordings at 8 kHz. Prompts whose
published transcript ends a sentence are *finished* turns; prompts recorded as fragments to be
joined ("You have", "Please enter your") and whose text ``ends_incomplete`` are *unfinished*.
Each clip gets the VAD's 0.2 s of silence appended, as at a VAD stop, and is judged once.
Prints the share of each set the model calls complete and the mean inference time.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voiceagent.processors.end_of_turn import smart_turn_analyzer  # noqa: E402
from voiceagent.transports.twilio.codec import StreamResampler  # noqa: E402
from voiceagent.turns.text import ends_incomplete  # noqa: E402

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def clips() -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    finished, unfinished = [], []
    with gzip.open(TRANSCRIPTS, "rt", errors="replace") as lines:
        for line in lines:
            if ":" not in line or line.startswith(";"):
                continue
            key, text = (part.strip() for part in line.split(":", 1))
            path = SOUNDS / f"{key}.wav"
            if not path.exists() or not text:
                continue
            words = text.rstrip(".?!").split()
            if text[-1] in ".?!" and len(words) >= 4 and not ends_incomplete(text[:-1]):
                finished.append((path, text))
            elif text[-1] not in ".?!" and len(words) >= 2 and ends_incomplete(text):
                unfinished.append((path, text))
    return finished, unfinished


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=120, help="clips per set at most")
    args = parser.parse_args()
    if not TRANSCRIPTS.exists():
        sys.exit("needs Debian's asterisk-core-sounds-en-wav and asterisk-core-sounds-en")
    analyzer = smart_turn_analyzer()
    analyzer.set_sample_rate(16000)
    random.seed(1)
    took: list[float] = []
    for label, group in zip(("finished", "unfinished"), clips(), strict=True):
        sample = random.sample(group, min(args.n, len(group)))
        complete = 0
        for path, _text in sample:
            with wave.open(str(path)) as w:
                raw = w.readframes(w.getnframes())
                pcm = StreamResampler(w.getframerate(), 16000).resample(raw)
            audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
            audio = np.concatenate([audio, np.zeros(3200, np.float32)])
            t = time.perf_counter()
            result = analyzer._predict_endpoint(audio)
            took.append(time.perf_counter() - t)
            complete += result["prediction"]
        print(
            f"{label:10s} prompts: {len(sample):3d}, judged complete {complete:3d} "
            f"({100 * complete / max(1, len(sample)):.0f} %)"
        )
    print(f"inference mean {1000 * sum(took) / len(took):.0f} ms per clip (1 thread)")


if __name__ == "__main__":
    main()
