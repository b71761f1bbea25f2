"""The backchannel lexicon: acknowledgements never take the floor."""

import pytest

from voiceagent.turns.backchannel import content_words, is_backchannel, is_clear_word


@pytest.mark.parametrize(
    "text",
    [
        "uh-huh",
        "Mm-hmm.",
        "mhm",
        "Yeah.",
        "okay",
        "OK",
        "right",
        "sure",
        "got it",
        "I see",
        "yes",
        "Yeah, okay.",
        "uh huh, yeah right",
        "Thank you.",
        "um",
        "oh okay",
        "all right",
    ],
)
def test_backchannel_lexicon_recognises_acknowledgements(text):
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "wait",
        "stop",
        "no",
        "wait, stop",
        "yeah but",
        "okay so what about Tuesday",
        "yes please book it",
        "hold on",
        "I see a problem",
    ],
)
def test_backchannel_lexicon_lets_real_words_through(text):
    assert not is_backchannel(text)


def test_backchannel_fillers_are_not_content_words():
    assert content_words("Um, uh, wait") == ["wait"]
    assert content_words("mm-hmm") == []


def test_backchannel_single_word_clarity():
    assert [
        w for w in ["stop", "no", "tuesday", "you", "the", "yeah", "um", "a"] if is_clear_word(w)
    ] == ["stop", "no", "tuesday"]
