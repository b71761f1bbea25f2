"""LLM token stream → speakable chunks, released as early as sounds natural.

The first chunk of a reply goes out at the first clause boundary (``, ; : —`` or a
sentence end) once it has ``first_chunk_min_words`` words, so the TTS starts speaking
early; later chunks go out at sentence ends (or at a clause boundary of a very long
clause). Whether a period ends a sentence is pipecat's call (``match_endofsentence``, its
sentencex rules: abbreviations such as Dr., e.g., a.m. before a lower-case word, initials),
asked once the next word has begun, as pipecat's own aggregator does. A boundary needs the
character after it, so "3." waits to see whether "5" follows: numbers (3.5, $3.50, 3:30,
1,000, 555-123-4567, (555) 123 4567) are never split. What pipecat's sentence aggregator does
not do, and this one does for the telephone: clause-sized first chunks, run-on cuts, list
markers ("1." at a line start), an ellipsis as a pause. Markdown is stripped from what is spoken
by pipecat's ``strip_markdown`` (then whitespace is collapsed).

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
from pipecat.utils.string import match_endofsentence
from pipecat.utils.text.base_text_aggregator import TextType
from pipecat.utils.text.transforms.strip_markdown import strip_markdown

_SENTENCE_END = ".!?"
_CLAUSE_END = ",;:"
_DASHES = "\u2014\u2013"  # em dash, en dash
_CLOSERS = "\"')]}\u201d\u2019\u00bb*_`"
_OPENERS = "\"'([{\u201c\u2018\u00ab*_`"
_NUMERIC_RE = re.compile(r"^[($]*\d[\d,.:)\-]*$")

_WAIT = "wait"


async def clean_for_speech(text: str) -> str:
    """Markdown stripped by pipecat's ``strip_markdown``, whitespace collapsed to single spaces.

    The collapse is ours: a chunk may span a line break (a list item), which a TTS reads as
    nothing or as a long pause.
    """
    return " ".join((await strip_markdown(text, TextType.SENTENCE)).split())


def _sentence_ends_at(text: str, start: int, at: int, end: int) -> bool:
    """Whether pipecat's sentence splitter ends a sentence at ``at``, reading ``text[start:end]``.

    Sentences it ends before ``at`` (where this module keeps going: a list marker) are
    stepped over.
    """
    p = start
    while p < at:
        found = match_endofsentence(text[p:end])
        if found == 0:
            return False
        p += found
    return p == at


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
    if text[k:i].strip(_OPENERS + _CLOSERS).isdigit():
        before = text[start:k].rstrip(" \t")
        if not before.strip() or before.endswith("\n"):
            return None, j  # a list marker: "1. Cleaning"
    m = j
    while m < n and text[m].isspace():
        m += 1
    if m == n:
        return ("sentence" if final else _WAIT), j
    # pipecat's check at the next word's first character ("Dr. S" no, "then. M" yes), then,
    # if that did not end it, once the word is whole ("I. Did"), as its aggregator does.
    if _sentence_ends_at(text, start, j, m + 1):
        return "sentence", j
    e = m
    while e < n and not text[e].isspace():
        e += 1
    if e == n and not final:
        return _WAIT, j
    return ("sentence" if _sentence_ends_at(text, start, j, e) else None), j


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
        The chunks to speak now (as written: :func:`clean_for_speech` makes them speakable)
        and the rest still waiting.
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
                chunk = text[start:end].strip()
                if chunk:
                    chunks.append(chunk)
                    first = False
                start = end
        i = end
    if final:
        chunk = text[start:].strip()
        if chunk:
            chunks.append(chunk)
        return chunks, ""
    cut_at = _forced_cut(text[start:], max_chunk_words)
    if cut_at is None and first:
        cut_at = _first_cut(text[start:], first_chunk_max_words)
    if cut_at is not None:
        chunk = text[start : start + cut_at].strip()
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
            spoken = await clean_for_speech(chunk)
            if spoken:
                await self.push_frame(AggregatedTextFrame(spoken, TextType.SENTENCE))
