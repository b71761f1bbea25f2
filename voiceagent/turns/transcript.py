"""The caller's words of one turn, assembled from partials and finals by the audio they cover.

A streaming STT re-transcribes the same audio several times: interims of an open window, then
its final (which may add the words the last interim lacked, or change them), and it may close
an utterance in several ``is_final`` windows. ``TurnTranscript`` keeps one segment per piece of
audio: a newer transcript of audio an older one covered *replaces* it, so a repeated or revised
hypothesis never stacks up ("Hi Hi Hi"), and windows are joined in audio order whatever order
they arrived in.

Transcripts without an audio span (an STT that gives none) fall back to arrival order: an
interim replaces the open interim, a final closes it.

``split_at`` divides a transcript's words at a point in time: the words the caller said before
they resumed belong to the turn already committed (a revision of it), the rest to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voiceagent.frames import AudioSpan, SpokenWord

SAME_START_S = 0.05
"""Windows starting this close together are the same window re-transcribed."""
MIN_OVERLAP_S = 0.1
"""Windows sharing less audio than this are neighbours (STT times are rounded), not rivals."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """A partial (``final=False``) or final transcript, when it arrived and what audio it covers."""

    text: str
    final: bool
    at: float
    span: AudioSpan | None = None


@dataclass(slots=True)
class _Segment:
    text: str
    final: bool
    at: float
    span: AudioSpan | None


@dataclass(slots=True)
class TurnTranscript:
    """The words of one caller turn so far (see the module docstring)."""

    _segments: list[_Segment] = field(default_factory=list)

    def add(self, transcript: Transcript) -> None:
        """Take a newer transcript; it replaces whatever it re-transcribes."""
        seg = _Segment(transcript.text.strip(), transcript.final, transcript.at, transcript.span)
        span = transcript.span
        if span is None:
            last = self._segments[-1] if self._segments else None
            if last is not None and last.span is None and not last.final:
                self._segments[-1] = seg
            else:
                self._segments.append(seg)
            return
        kept = [s for s in self._segments if s.span is None or not _overlaps(s.span, span)]
        index = len(kept)
        while index > 0 and kept[index - 1].span is not None:
            prior = kept[index - 1].span
            assert prior is not None
            if prior.start <= span.start:
                break
            index -= 1
        kept.insert(index, seg)
        self._segments = kept

    def text(self) -> str:
        """The turn's words, in audio order."""
        return " ".join(s.text for s in self._segments if s.text)

    @property
    def empty(self) -> bool:
        """Whether no segment has words."""
        return not any(s.text for s in self._segments)

    @property
    def final(self) -> bool:
        """Whether the newest segment (by audio) is final: the STT has closed what it heard."""
        segments = [s for s in self._segments if s.text]
        return bool(segments) and segments[-1].final

    @property
    def covered_until(self) -> float | None:
        """How far into the caller's audio the STT had got (the latest span end), if known."""
        ends = [s.span.end for s in self._segments if s.span is not None]
        return max(ends) if ends else None

    @property
    def last_word_end(self) -> float | None:
        """When the last recognised word ended, if the STT gives word times."""
        ends = [w.end for s in self._segments if s.span is not None for w in s.span.words]
        return max(ends) if ends else None

    @property
    def last_at(self) -> float | None:
        """When the newest transcript arrived."""
        return max((s.at for s in self._segments), default=None)

    def clear(self) -> None:
        """Forget every segment."""
        self._segments.clear()


def _overlaps(a: AudioSpan, b: AudioSpan) -> bool:
    if abs(a.start - b.start) < SAME_START_S:
        return True
    return min(a.end, b.end) - max(a.start, b.start) > MIN_OVERLAP_S


def split_at(
    transcript: Transcript, boundary: float, window_boundary: float | None = None
) -> tuple[Transcript | None, Transcript | None]:
    """The part of ``transcript`` said before ``boundary`` and the part said after.

    With word times the words are divided at ``boundary``; with only a span, the whole
    transcript goes to the side its start is on, compared with ``window_boundary`` (default
    ``boundary``: a window is placed by where the STT began it, words by when they were said);
    without a span nothing can be told and it all goes after.
    """
    span = transcript.span
    if span is None:
        return None, transcript
    if not span.words:
        limit = boundary if window_boundary is None else window_boundary
        return (transcript, None) if span.start < limit else (None, transcript)
    before = tuple(w for w in span.words if w.start < boundary)
    after = tuple(w for w in span.words if w.start >= boundary)
    if not after:
        return transcript, None
    if not before:
        return None, transcript
    cut = after[0].start
    first = Transcript(
        _words_text(before),
        transcript.final,
        transcript.at,
        AudioSpan(span.start, min(span.end, cut), before),
    )
    second = Transcript(
        _words_text(after), transcript.final, transcript.at, AudioSpan(cut, span.end, after)
    )
    return first, second


def _words_text(words: tuple[SpokenWord, ...]) -> str:
    return " ".join(w.text for w in words)
