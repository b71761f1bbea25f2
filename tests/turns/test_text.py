"""Text cues: comparable normal forms and words that sound unfinished."""

import pytest

from voiceagent.turns.text import ends_incomplete, normalize


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("I need, um, to book.", "i need to book"),
        ("I NEED to book!", "i need to book"),
        ("Uh-huh.", "uhhuh"),
        ("Mm-hmm", "mmhmm"),
        ("555-123-4567", "555 123 4567"),
        ("It\u2019s fine", "it's fine"),
        ("Um... uh", ""),
    ],
)
def test_normalize(text, norm):
    assert normalize(text) == norm


@pytest.mark.parametrize(
    "text",
    [
        "I'd like to book and",
        "so um",
        "my number is",
        "it's",
        "I want the",
        "five five five",
        "555-12",
        "my zip code is 9",
        "my number is 555 123",
        "uh",
        "Do you have anything open next Wednesday,",
        "I was thinking \u2014",
        "well...",
        "Hi",
        "Sorry.",
        "Oh, hello",
    ],
)
def test_unfinished_sounding_endings(text):
    assert ends_incomplete(text)


@pytest.mark.parametrize(
    "text",
    [
        "I need to book a cleaning",
        "a table for two",
        "yes",
        "my number is 555-123-4567",
        "five five five one two three four",
        "what time is it",
        "Do you have anything open next Wednesday?",
        "my number is 555-123-4567.",
        "I'm so sorry",
        "Hi, what time do you close?",
        "",
    ],
)
def test_complete_endings(text):
    assert not ends_incomplete(text)


@pytest.mark.parametrize("text", ["Um. My number", "the address", "Hello?", "Hi!"])
def test_real_stt_endings(text):
    # A real STT drops the trailing "is" ("Um. My number"); a greeting asked as a question
    # ("Hello?") wants an answer.
    assert ends_incomplete(text) == (text in ("Um. My number", "the address"))
