"""LLM token stream → speakable chunks, released as early as sounds natural.

The first chunk of a reply goes out at the first clause boundary (``, ; : —`` or a
sentence end) once it has ``first_chunk_min_words`` words, so the TTS starts speaking
early; later chunks go out at sentence ends (or at a clause boundary of a very long
clause). A boundary needs the character after it, so "3." waits to see whether "5"
follows: numbers (3.5, $3.50, 3:30, 1,000, 555-123-4567, (555) 123 4567) are never split,
nor are abbreviations (Dr., e.g., a.m. before a lower-case word) or list markers ("1.").
Markdown (emphasis, headings, bullets, backticks, links) is stripped from what is spoken.

Chunks are pushed as pipecat ``AggregatedTextFrame`` (``TextType.SENTENCE``): the TTS
service speaks an aggregated frame at once instead of re-aggregating it, and the
``LLMFullResponseStartFrame``/``EndFrame`` brackets still flow so it groups the reply.
"""

from __future__ import annotations

import re

from pipecat.frames.frames import (
    AggregatedTextFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.text.base_text_aggregator import TextType

_SENTENCE_END = ".!?"
_CLAUSE_END = ",;:"
_DASHES = "\u2014\u2013"  # em dash, en dash
_CLOSERS = "\"')]}\u201d\u2019\u00bb*_`"
_OPENERS = "\"'([{\u201c\u2018\u00ab*_`"
_TITLES = frozenset(str.split("mr mrs ms dr prof st sr jr mt ft rev gen sgt capt lt col hon vs cf"))
_NEVER_END = frozenset({"e.g", "i.e", "viz"})
_AMBIGUOUS = frozenset(
    str.split("etc inc ltd co corp llc ave blvd rd apt dept approx est no am pm a.m p.m")
)
"""Abbreviations that end a sentence only when an upper-case word follows."""

_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_BULLET_RE = re.compile(r"(^|\n)[ \t]*(?:[-*+\u2022]|#{1,6})[ \t]+")
_MARKUP_RE = re.compile(r"[*`#~]|(?<!\w)_+|_+(?!\w)")
_NUMERIC_RE = re.compile(r"^[($]*\d[\d,.:)\-]*$")

_WAIT = "wait"


def clean_for_speech(text: str) -> str:
    """Strip markdown (emphasis, headings, bullets, backticks, links) and collapse whitespace."""
    text = _LINK_RE.sub(r"\1", text)
    text = _BULLET_RE.sub(r"\1", text)
    text = _MARKUP_RE.sub("", text)
    return " ".join(text.split())


def _sentence_end(text: str, start: int, i: int, final: bool) -> tuple[str | None, int]:
    """Classify the ``.!?`` run at ``i``: ("sentence"|"clause"|None|"wait", index after it)."""
    n = len(text)
    j = i
    while j < n and text[j] in _SENTENCE_END:
        j += 1
    punct = text[i:j]
    while j < n and text[j] in _CLOSERS:
        j += 1
    if j == n:
        return ("sentence" if final else _WAIT), j
    if not text[j].isspace():
        return None, j  # 3.5, example.com, e.g.x: inside a token
    if "?" in punct or "!" in punct:
        return "sentence", j
    if len(punct) > 1:
        return "clause", j  # an ellipsis is a pause, not an end
    k = i
    while k > start and not text[k - 1].isspace():
        k -= 1
    raw = text[k:i].strip(_OPENERS + _CLOSERS)
    token = raw.lower()
    if not token:
        return "sentence", j
    if token in _TITLES or token in _NEVER_END:
        return None, j
    if len(raw) == 1 and raw.isupper():
        return None, j  # an initial: "J. Smith"
    if token.isdigit():
        before = text[start:k].rstrip(" \t")
        if not before.strip() or before.endswith("\n"):
            return None, j  # a list marker: "1. Cleaning"
    if token in _AMBIGUOUS or "." in token:
        m = j
        while m < n and text[m].isspace():
            m += 1
        if m == n:
            return ("sentence" if final else _WAIT), j
        return ("sentence" if text[m].isupper() else None), j
    return "sentence", j


def _clause_end(text: str, i: int, final: bool) -> tuple[str | None, int]:
    """Classify the ``, ; : — –`` or spaced ``-`` at ``i``."""
    n = len(text)
    c = text[i]
    j = i + 1
    while j < n and text[j] in _CLOSERS:
        j += 1
    if j == n:
        return ("clause" if final else _WAIT), j
    if c in _CLAUSE_END or c == "-":
        return ("clause" if text[j].isspace() else None), j
    if i > 0 and text[i - 1].isdigit() and text[j].isdigit():
        return None, j  # a range: 9–5
    return "clause", j


def _is_numeric(token: str) -> bool:
    return bool(_NUMERIC_RE.match(token))


def _forced_cut(rest: str, max_words: int) -> int | None:
    """Where to cut a run-on text with no boundary (between words, never between numbers)."""
    tokens = list(re.finditer(r"\S+", rest))
    if len(tokens) <= max_words:
        return None
    m = max_words - 1
    while m > 0 and _is_numeric(tokens[m].group()) and _is_numeric(tokens[m + 1].group()):
        m -= 1
    return tokens[m].end()


_JOINERS = frozenset(str.split("and but or so because which where while from with"))
"""Words a run-on first sentence may be cut before ("…is open | from 8 am to 5 pm")."""
_BINDS_NEXT = _JOINERS | frozenset(
    str.split("to at by on in of for the a an is are was about around until till before after")
)
"""Words that belong with the number after them ("at 3", "until 5"): no cut between."""


def _first_cut(rest: str, max_words: int) -> int | None:
    """Where to cut a first sentence that has no boundary yet: before a joining word or number.

    Only once ``max_words`` words are in (the TTS would otherwise wait for the whole sentence
    of a slow LLM), after at least 4 words, at the last joiner ("and", "from") or number that
    follows a word ("…Thursday | 8 am…"), never right after a number.
    """
    tokens = list(re.finditer(r"\S+", rest))
    if len(tokens) <= max_words:
        return None
    for m in range(min(max_words, len(tokens) - 2), 3, -1):  # the last token may be partial
        before = tokens[m - 1].group()
        if _is_numeric(before):
            continue
        token = tokens[m].group()
        if token.lower().strip(_OPENERS + _CLOSERS) in _JOINERS or (
            _is_numeric(token) and before.lower().strip(_OPENERS + _CLOSERS) not in _BINDS_NEXT
        ):
            return tokens[m - 1].end()
    return None


def split_speakable(
    text: str,
    *,
    first: bool = True,
    final: bool = False,
    first_chunk_min_words: int = 4,
    first_chunk_max_words: int = 10,
    long_clause_words: int = 20,
    max_chunk_words: int = 40,
) -> tuple[list[str], str]:
    """Split reply text into speakable chunks.

    Args:
        text: The buffered reply text (raw LLM output).
        first: Whether no chunk of this reply was released yet (first-chunk rule applies).
        final: The reply ended: everything left is released.
        first_chunk_min_words: Words the first chunk needs before a clause boundary cuts it.
        first_chunk_max_words: A first sentence with no boundary after this many words is cut
            before a joining word ("and", "from", …) so the TTS can start.
        long_clause_words: Later chunks are cut at a clause boundary past this many words.
        max_chunk_words: A text with no boundary at all is cut after this many words.

    Returns:
        The chunks to speak now (markdown stripped) and the raw rest still waiting.
    """
    chunks: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        kind: str | None = None
        end = i + 1
        if c == "\n":
            kind = "sentence"
        elif c in _SENTENCE_END:
            kind, end = _sentence_end(text, start, i, final)
        elif c in _CLAUSE_END or c in _DASHES or (c == "-" and i > 0 and text[i - 1] == " "):
            kind, end = _clause_end(text, i, final)
        if kind == _WAIT:
            break
        if kind is not None:
            words = len(text[start:end].split())
            if first:
                cut = words >= first_chunk_min_words
            else:
                cut = kind == "sentence" or words > long_clause_words
            if cut:
                chunk = clean_for_speech(text[start:end])
                if chunk:
                    chunks.append(chunk)
                    first = False
                start = end
        i = end
    if final:
        chunk = clean_for_speech(text[start:])
        if chunk:
            chunks.append(chunk)
        return chunks, ""
    cut_at = _forced_cut(text[start:], max_chunk_words)
    if cut_at is None and first:
        cut_at = _first_cut(text[start:], first_chunk_max_words)
    if cut_at is not None:
        chunk = clean_for_speech(text[start : start + cut_at])
        if chunk:
            chunks.append(chunk)
        start += cut_at
    return chunks, text[start:]


class SentenceAggregator(FrameProcessor):
    """Turns ``LLMTextFrame`` tokens into ``AggregatedTextFrame`` chunks for the TTS."""

    def __init__(
        self,
        *,
        first_chunk_min_words: int = 4,
        long_clause_words: int = 20,
        max_chunk_words: int = 40,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if first_chunk_min_words < 1 or long_clause_words < 1 or max_chunk_words < 2:
            raise ValueError("chunk word limits must be positive (max_chunk_words >= 2)")
        self._first_min = first_chunk_min_words
        self._long_clause = long_clause_words
        self._max_words = max_chunk_words
        self._buffer = ""
        self._first = True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Aggregate reply tokens; flush at the reply's end; forget on interruption."""
        await super().process_frame(frame, direction)
        if direction != FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, LLMTextFrame) and not frame.skip_tts:
            self._buffer += frame.text
            await self._release(final=False)
            return
        if isinstance(frame, LLMFullResponseStartFrame):
            self._reset()
        elif isinstance(frame, LLMFullResponseEndFrame | EndFrame):
            await self._release(final=True)
            self._reset()
        elif isinstance(frame, InterruptionFrame):
            self._reset()
        await self.push_frame(frame, direction)

    def _reset(self) -> None:
        self._buffer = ""
        self._first = True

    async def _release(self, *, final: bool) -> None:
        if not self._buffer:
            return
        chunks, self._buffer = split_speakable(
            self._buffer,
            first=self._first,
            final=final,
            first_chunk_min_words=self._first_min,
            long_clause_words=self._long_clause,
            max_chunk_words=self._max_words,
        )
        for chunk in chunks:
            self._first = False
            await self.push_frame(AggregatedTextFrame(chunk, TextType.SENTENCE))
