"""The backchannel lexicon: short acknowledgements a caller makes while the agent talks.

"uh-huh", "yeah", "okay", "got it", "I see" say "go on", not "stop". The barge-in gate uses
this lexicon only to *suppress* an interruption, never to trigger one. Words are compared after
normalisation (lower case, hyphens split, punctuation dropped), so "Mm-hmm." and "mm hmm" match.
"""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(r"[a-z0-9']+")

# Hesitations and hums: "uh", "um", "er", "erm", "ah", "oh", "hmm", "mm", "mhm", "huh".
_FILLER_RE = re.compile(r"^(?:u+h+|u+m+|e+r+m*|a+h+|o+h+|h+m+|m+|m+h+m+|h+u+h+|a+h+a+)$")

# Acknowledgements, as normalised token tuples ("uh-huh" normalises to ("uh", "huh")).
_BACKCHANNEL_WORDS = (
    "yeah",
    "yea",
    "yah",
    "ya",
    "yep",
    "yup",
    "yes",
    "okay",
    "ok",
    "okey",
    "k",
    "kay",
    "right",
    "sure",
    "alright",
    "cool",
    "nice",
    "great",
    "good",
    "perfect",
    "exactly",
    "totally",
    "absolutely",
    "definitely",
    "indeed",
    "true",
    "correct",
    "gotcha",
    "fine",
    "wow",
    "really",
    "interesting",
    "awesome",
    "lovely",
    "thanks",
    "uhhuh",
    "mmhmm",
    "mhmm",
)
_BACKCHANNEL_MULTI = (
    "uh huh",
    "mm hmm",
    "got it",
    "i got it",
    "i see",
    "all right",
    "that's right",
    "thats right",
    "makes sense",
    "sounds good",
    "of course",
    "i know",
    "thank you",
    "for sure",
    "fair enough",
    "no problem",
)
_BACKCHANNEL_PHRASES: frozenset[tuple[str, ...]] = frozenset(
    tuple(phrase.split()) for phrase in (*_BACKCHANNEL_WORDS, *_BACKCHANNEL_MULTI)
)
_MAX_PHRASE = max(len(p) for p in _BACKCHANNEL_PHRASES)

# Words too weak to take the floor on their own (and what STT often makes of noise: "you", "the").
_WEAK_WORDS: frozenset[str] = frozenset(
    (
        "a",
        "an",
        "the",
        "and",
        "but",
        "or",
        "so",
        "if",
        "then",
        "i",
        "you",
        "he",
        "she",
        "it",
        "we",
        "they",
        "me",
        "him",
        "her",
        "us",
        "them",
        "my",
        "your",
        "to",
        "of",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "do",
        "does",
        "did",
        "it's",
        "i'm",
        "that",
        "this",
        "there",
        "here",
        "just",
        "like",
        "well",
    )
)


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text`` (hyphenated words split, punctuation dropped)."""
    return _TOKEN_RE.findall(text.lower().replace("\u2019", "'").replace("-", " "))


def is_filler(word: str) -> bool:
    """True for a hesitation or hum ("um", "uh", "hmm", "mm"); ``word`` is one normalised token."""
    return bool(_FILLER_RE.match(word))


def content_words(text: str) -> list[str]:
    """The words of ``text`` that are not fillers (what counts towards ``min_words``)."""
    return [w for w in tokenize(text) if not is_filler(w)]


def is_backchannel_words(words: list[str]) -> bool:
    """True if ``words`` (normalised tokens) are only acknowledgements and fillers, not empty."""
    if not words:
        return False
    i, n = 0, len(words)
    while i < n:
        for size in range(min(_MAX_PHRASE, n - i), 0, -1):
            if tuple(words[i : i + size]) in _BACKCHANNEL_PHRASES:
                i += size
                break
        else:
            if not is_filler(words[i]):
                return False
            i += 1
    return True


def is_backchannel(text: str) -> bool:
    """True if ``text`` is only a backchannel ("uh-huh", "Yeah, okay.", "got it", "mm-hmm").

    Empty text is not a backchannel (it is nothing at all).
    """
    return is_backchannel_words(tokenize(text))


def adds_nothing(text: str) -> bool:
    """True if ``text`` has no content words or only acknowledgements ("", "um", "Yeah, okay.")."""
    words = content_words(text)
    return not words or is_backchannel_words(words)


def is_clear_word(word: str) -> bool:
    """True if one normalised word can take the floor alone ("stop", "wait", "no", "tuesday").

    Fillers, acknowledgements and weak function words ("the", "you", "so") cannot.
    """
    return (
        len(word) >= 2
        and not is_filler(word)
        and (word,) not in _BACKCHANNEL_PHRASES
        and word not in _WEAK_WORDS
    )
