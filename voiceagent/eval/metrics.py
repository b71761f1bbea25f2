"""Figures of an eval: word error rate of what the agent understood, latency percentiles.

The alignment is jiwer's and the quantiles numpy's; the normalisation before the alignment is
ours (:func:`comparable_words`: a caller dictating a number says digits, an STT writes a group).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jiwer
import numpy as np

from voiceagent.turns.text import words


@dataclass(frozen=True)
class WordErrors:
    """Word-level edit distance between what was said and what was understood."""

    edits: int
    reference_words: int

    @property
    def rate(self) -> float:
        """Edits per reference word (0 for two empty texts; can exceed 1 with insertions)."""
        if self.reference_words == 0:
            return float(self.edits)
        return self.edits / self.reference_words

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(self.edits + other.edits, self.reference_words + other.reference_words)


_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DIGIT_WORDS = {w: str(n) for n, w in enumerate(_NUMBER_WORDS)}


def comparable_words(text: str) -> list[str]:
    """Lower-cased words without punctuation; digits one by one ("5550123", "five" → digits).

    A caller dictating a number says digits; an STT writes them as a group or as words.
    """
    out: list[str] = []
    for word in words(text):
        word = _DIGIT_WORDS.get(word, word)
        if word.isdigit() and len(word) > 1:
            out.extend(word)
        else:
            out.append(word)
    return out


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Substitutions + deletions + insertions turning ``reference`` into ``hypothesis``.

    Both are compared as :func:`comparable_words`; the alignment is jiwer's.
    """
    ref, hyp = comparable_words(reference), comparable_words(hypothesis)
    if not ref or not hyp:  # jiwer refuses an empty reference; either way nothing aligns
        return WordErrors(len(ref) + len(hyp), len(ref))
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return WordErrors(out.substitutions + out.deletions + out.insertions, len(ref))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference``."""
    return word_errors(reference, hypothesis).rate


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> WordErrors:
    """Summed word errors over ``(reference, hypothesis)`` pairs (errors / all reference words)."""
    total = WordErrors(0, 0)
    for reference, hypothesis in pairs:
        total = total + word_errors(reference, hypothesis)
    return total


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks (numpy's).

    Raises:
        ValueError: no values, or ``q`` outside 0..1.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within 0..1, got {q}")
    return float(np.quantile(np.asarray(values, dtype=float), q))


@dataclass(frozen=True)
class LatencySummary:
    """Caller end of speech → first agent audio over some turns (milliseconds)."""

    count: int
    p50_ms: float
    p90_ms: float
    max_ms: float

    @classmethod
    def of(cls, latencies_ms: Sequence[float]) -> LatencySummary | None:
        """Summary of the given latencies; None when there are none."""
        if not latencies_ms:
            return None
        return cls(
            count=len(latencies_ms),
            p50_ms=percentile(latencies_ms, 0.5),
            p90_ms=percentile(latencies_ms, 0.9),
            max_ms=max(latencies_ms),
        )
