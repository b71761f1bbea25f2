"""Caller-text helpers for turn-taking: comparable normal forms and incomplete-ending cues.

Partials are re-decoded hypotheses of the same audio, so they differ in case, punctuation
and filler words ("um", "uh") without the caller having said anything new. ``normalize``
removes those differences so the turn engine can tell "the STT changed its mind" from "the
STT is just re-punctuating". ``ends_incomplete`` spots utterances that sound unfinished
("and", "my number is", "my number", a phone number being dictated) so the engine waits
longer before committing them.
"""

from __future__ import annotations

import re


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


FILLERS = _word_set("um umm uh uhh uhm er erm ah eh hmm hm mm")
"""Hesitation sounds that carry no content (``uh-huh``/``mm-hmm`` are answers, not fillers)."""

_CONTINUATION_WORDS = _word_set(
    # conjunctions and connectives
    "and or but so because cause cuz then than if whether although though unless while plus "
    "also which whose "
    # articles, possessives, prepositions: a noun must follow
    "the a an my your our their his her its to of for with at from about into as per via "
    # copulas and contractions left hanging
    "is are was were it's that's there's i'm we're you're they're he's she's i we i'd i'll "
    "i've wanna gonna maybe actually basically"
)
"""Words that rarely end a complete spoken utterance."""

_OPENERS = _word_set("hi hello hey hiya sorry excuse me well oh")
"""Words that open a request ("Hi, …", "Sorry, …"): an utterance of only these is unfinished."""

_NUMBER_WORDS = _word_set(
    "zero oh o one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty "
    "seventy eighty ninety hundred thousand double triple dash"
)

_DICTATION_CUES = _word_set(
    "is number phone zip code extension ext account card id pin reference confirmation "
    "address unit apartment suite"
)
"""Words after which a single trailing number is likely the start of a dictated string."""

_POSSESSIVES = _word_set("my your our his her their the a an this that")
"""Before a dictation noun at the end ("my number", "the address"), the value is still to come."""

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_TRAILING_PAUSE_RE = re.compile(r"(?:[,;:\u2014\u2013-]|\.\.\.|\u2026)[\"')\]\s]*$")
"""A hypothesis ending in a comma, semicolon, colon, dash or ellipsis: the STT heard a
continuation pause (punctuating STTs mark it: Deepgram smart_format, Whisper)."""
_HYPHEN_JOIN_RE = re.compile(r"(?<=[a-z])-(?=[a-z])")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` with punctuation removed (fillers kept).

    Hyphenated words are joined ("uh-huh" → "uhhuh") so answers are not mistaken for
    fillers; digit groups split on punctuation ("555-123" → "555", "123").
    """
    lowered = _HYPHEN_JOIN_RE.sub("", text.lower().replace("\u2019", "'"))
    return _WORD_RE.findall(lowered)


def normalize(text: str) -> str:
    """The comparable form of a caller hypothesis: lower case, no punctuation, no fillers."""
    return " ".join(w for w in words(text) if w not in FILLERS)


def _is_number_token(word: str) -> bool:
    return word.isdigit() or word in _NUMBER_WORDS


def _dictating(ws: list[str]) -> bool:
    """Whether the utterance ends in a digit/number group that is likely still being dictated."""
    run = 0
    digits = 0
    for word in reversed(ws):
        if not _is_number_token(word):
            break
        run += 1
        digits += len(word) if word.isdigit() else int(word != "dash")
    if run == 0:
        return False
    if digits in (7, 10, 11):
        return False  # a whole phone number
    if run >= 2 or digits >= 3:
        return True
    before = ws[-run - 1] if len(ws) > run else ""
    return before in _DICTATION_CUES


def ends_incomplete(text: str) -> bool:
    """Whether ``text`` sounds unfinished (a hanging word, filler, number, or trailing comma).

    A hanging word ("and", "my number is"), a filler, a number being dictated, or a trailing
    continuation mark (comma, dash, ellipsis). Incomplete: "I'd like to book and", "so um",
    "my number is", "it's", "five five five", "555-12", "anything open next Wednesday,",
    "Hi", "Sorry" (an opener alone), "Um. My number" (a dictation noun after "my").
    Complete: "I need to book a cleaning", "a table for two", "yes".
    """
    ws = words(text)
    if not ws:
        return False
    if _TRAILING_PAUSE_RE.search(text):
        return True
    last = ws[-1]
    if last in FILLERS or last in _CONTINUATION_WORDS:
        return True
    if all(w in _OPENERS for w in ws) and not text.rstrip().endswith(("?", "!")):
        return True  # "Hi," / "Sorry" open a request; "Hello?" asks for an answer
    if last in _DICTATION_CUES and last != "is" and len(ws) >= 2 and ws[-2] in _POSSESSIVES:
        return True  # "my number", "the address": an STT that dropped the trailing "is"
    # A trailing unfinished digit group ("555-12", "555 123") or a dictated number string.
    return _dictating(ws)


def word_count(text: str) -> int:
    """Number of whitespace-separated words in ``text``."""
    return len(text.split())
