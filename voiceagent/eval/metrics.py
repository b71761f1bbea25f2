"""Figures of an eval: word error rate of what the agent understood, latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Substitutions + deletions + insertions turning ``reference`` into ``hypothesis``.

    Both are compared as lower-cased words without punctuation (``voiceagent.turns.text.words``).
    """
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, 1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution or match
            )
        previous = current
    return WordErrors(previous[-1], len(ref))


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
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks.

    Raises:
        ValueError: no values, or ``q`` outside 0..1.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within 0..1, got {q}")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


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
