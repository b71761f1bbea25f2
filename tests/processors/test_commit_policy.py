"""CommitPolicy and its text helpers, with plain numbers for time (no processor, no clock)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from voiceagent.processors.commit_policy import (
    CancelReply,
    CancelSpeculation,
    Commit,
    CommitPolicy,
    Regret,
    RegretWindowClosed,
    Rerun,
    RouterParams,
    Speculate,
)
from voiceagent.processors.text_normalize import UtteranceText, ends_incomplete, normalize


def approx(value: float):
    return pytest.approx(value, abs=1e-9)


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


def test_utterance_text_joins_stt_segments():
    t = UtteranceText()
    t.partial("I need")
    t.final("I need to book")
    t.partial("a clean")
    t.partial("a cleaning")
    assert t.text() == "I need to book a cleaning"


def test_utterance_text_strips_committed_words_from_later_hypotheses():
    t = UtteranceText()
    t.partial("I need to book a cleaning")
    t.commit()
    assert t.text() == ""
    t.partial("I need to book a clean")  # the STT re-decodes the committed audio: nothing new
    assert t.text() == ""
    t.partial("I need to book a cleaning for")
    assert t.text() == "for"
    t.commit()
    t.partial("I need to book a cleaning for Tuesday")
    assert t.text() == "Tuesday"
    t.final("I need to book a cleaning for Tuesday.")
    assert t.text() == "Tuesday."
    t.commit()
    t.partial("Also whitening")  # the STT closed its segment: everything is new
    assert t.text() == "Also whitening"


def test_utterance_text_revision_and_restart():
    t = UtteranceText()
    t.partial("I need a clean in")
    t.commit()
    t.final("I need a cleaning in")  # the same words, decoded better
    assert t.text() == ""
    t.partial("I need a clean in")
    t.commit()
    t.partial("I need a cleaning in the morning")
    assert t.text() == "the morning"
    t.commit()
    t.partial("Whitening too")  # no final came, but the STT clearly started over
    assert t.text() == "Whitening too"


def _stable(policy: CommitPolicy, text: str, start: float, every: float = 0.35, n: int = 3):
    out = []
    for i in range(n):
        out += policy.on_partial(text, start + i * every)
    return out


def test_commit_after_silence_and_deadline():
    policy = CommitPolicy(RouterParams(speculate=False))
    assert policy.on_caller_started(0.0) == []
    assert _stable(policy, "I need to book a cleaning", 0.1) == []
    assert policy.on_caller_stopped(1.0) == []
    assert policy.next_deadline(1.0) == approx(1.25)
    assert policy.on_tick(1.2) == []
    [commit] = policy.on_tick(1.25)
    assert isinstance(commit, Commit)
    assert (commit.text, commit.reason, commit.hesitation) == (
        "I need to book a cleaning",
        "stable",
        False,
    )
    assert commit.wait_s == approx(0.25) and commit.utterance_s == approx(1.25)
    assert policy.next_deadline(1.25) == approx(2.25)  # the regret window
    assert policy.on_tick(2.25) == [RegretWindowClosed()]
    assert policy.next_deadline(2.25) is None


def test_fast_partials_still_need_min_stable_time():
    policy = CommitPolicy(RouterParams(speculate=False, min_stable_s=0.6))
    policy.on_caller_started(0.0)
    _stable(policy, "cancel it please", 0.0, every=0.1)
    policy.on_caller_stopped(0.2)
    assert policy.next_deadline(0.2) == approx(0.6)
    assert policy.on_tick(0.45) == []
    [commit] = policy.on_tick(0.6)
    assert commit.reason == "stable"


def test_hesitation_deadline_and_hard_bound():
    policy = CommitPolicy(RouterParams(speculate=False))
    policy.on_caller_started(0.0)
    _stable(policy, "my number is", 0.0)
    policy.on_caller_stopped(1.0)
    assert policy.next_deadline(1.0) == approx(1.95)
    unstable = CommitPolicy(RouterParams(speculate=False))
    unstable.on_caller_started(0.0)
    unstable.on_partial("I want", 0.5)
    unstable.on_caller_stopped(1.0)
    assert unstable.next_deadline(1.0) == approx(3.0)
    [commit] = unstable.on_tick(3.0)
    assert commit.reason == "max_wait"


def test_caller_who_sounds_unfinished_gets_the_acoustic_extra_wait():
    # Caller says "anything open next Wednesday" with an unfinished intonation, goes quiet.
    policy = CommitPolicy(RouterParams(speculate=False))
    policy.on_caller_started(0.0)
    _stable(policy, "Do you have anything open next Wednesday", 0.1)
    policy.on_caller_stopped(1.0)
    assert policy.next_deadline(1.0) == approx(1.25)
    # ... the end-of-turn model hears more coming: the commit waits 0.35 s longer.
    assert policy.on_end_of_turn(False, 0.15, 1.08) == []
    assert policy.next_deadline(1.08) == approx(1.6)
    assert policy.on_tick(1.25) == []
    # The caller goes on 0.5 s later: nothing was committed, nothing to regret.
    policy.on_caller_started(1.5)
    _stable(policy, "Do you have anything open next Wednesday maybe in the morning", 1.6)
    policy.on_caller_stopped(2.5)
    policy.on_end_of_turn(True, 0.94, 2.58)
    # It now waits the caller's own learned pause (0.5 s + margin), no acoustic extra.
    assert policy.next_deadline(2.58) == approx(2.5 + 0.5 + 0.15)
    [commit] = policy.on_tick(3.15)
    assert commit.text.endswith("maybe in the morning") and commit.end_of_turn_p == 0.94


def test_end_of_turn_verdict_for_an_older_pause_is_ignored():
    policy = CommitPolicy(RouterParams(speculate=False))
    policy.on_caller_started(0.0)
    _stable(policy, "What time do you close", 0.1)
    policy.on_caller_stopped(1.0)
    policy.on_caller_started(1.05)  # the caller resumed before the model answered
    assert policy.on_end_of_turn(False, 0.1, 1.08) == []
    policy.on_caller_stopped(1.2)
    assert policy.next_deadline(1.2) == approx(1.45)  # no acoustic extra


def test_unfinished_words_outweigh_the_model():
    policy = CommitPolicy(RouterParams(speculate=False))
    policy.on_caller_started(0.0)
    _stable(policy, "my number is", 0.0)
    policy.on_caller_stopped(1.0)
    policy.on_end_of_turn(False, 0.05, 1.08)
    assert policy.next_deadline(1.08) == approx(1.95)  # 0.25 + the text's 0.7, not both


def test_speculation_lifecycle_and_churn_guard():
    policy = CommitPolicy(RouterParams())
    policy.on_caller_started(0.0)
    out = _stable(policy, "book me for Tuesday", 0.0)
    assert out == [Speculate("book me for Tuesday", "book me for tuesday")]
    assert policy.on_caller_started(1.0) == [CancelSpeculation("caller_resumed")]
    # The same words again while the caller talks: no new speculation (they are adding words).
    assert policy.on_partial("book me for Tuesday", 1.1) == []
    # ... the caller was only clearing their throat: silence, speculate again.
    assert policy.on_caller_stopped(1.3) == [
        Speculate("book me for Tuesday", "book me for tuesday")
    ]
    # A late partial while silent: the old start is cancelled and the new text starts at once.
    assert policy.on_partial("book me for Tuesday at", 1.4) == [
        CancelSpeculation("text_changed"),
        Speculate("book me for Tuesday at", "book me for tuesday at"),
    ]


def test_silence_without_words_commits_nothing():
    policy = CommitPolicy(RouterParams())
    policy.on_caller_started(0.0)
    policy.on_partial("um", 0.3)
    assert policy.on_caller_stopped(0.5) == []
    assert policy.next_deadline(0.5) is None
    assert policy.on_tick(5.0) == []


def test_regret_cancels_the_silent_reply_at_once_and_words_continue_the_turn():
    policy = CommitPolicy(RouterParams(speculate=False))
    policy.on_caller_started(0.0)
    _stable(policy, "I need a cleaning", 0.0)
    policy.on_caller_stopped(1.0)
    [commit] = policy.on_tick(1.25)
    assert isinstance(commit, Commit)
    # The caller goes on before the agent is audible: its reply is cancelled at once.
    assert policy.on_caller_started(1.6) == [Regret(after_s=pytest.approx(0.35)), CancelReply()]
    assert policy.learned_pause_s == approx(0.6)
    assert policy.on_partial("um", 1.8) == []  # no words yet
    assert CancelReply() not in policy.on_partial("for Tuesday", 2.1)  # once is enough
    # Words came: no re-run at the VAD stop; the continuation commits as usual.
    assert Rerun() not in policy.on_caller_stopped(2.4)


def test_a_cough_after_the_commit_reruns_the_reply():
    policy = CommitPolicy(RouterParams(speculate=False))
    policy.on_caller_started(0.0)
    _stable(policy, "I need a cleaning", 0.0)
    policy.on_caller_stopped(1.0)
    policy.on_tick(1.25)
    assert policy.on_caller_started(1.5)[-1] == CancelReply()
    assert policy.on_caller_stopped(1.8) == [Rerun()]  # no words: answer after all
    assert Rerun() not in policy.on_tick(5.0)  # once


def test_regret_while_the_agent_is_audible_is_left_to_the_barge_in_gate():
    policy = CommitPolicy(RouterParams(speculate=False))
    policy.on_caller_started(0.0)
    _stable(policy, "I need a cleaning", 0.0)
    policy.on_caller_stopped(1.0)
    policy.on_tick(1.25)
    policy.on_agent_started(1.4)
    assert CancelReply() not in policy.on_caller_started(1.5)


def test_regret_window_zero_disables_regrets():
    policy = CommitPolicy(RouterParams(speculate=False, regret_window_s=0.0))
    policy.on_caller_started(0.0)
    _stable(policy, "I need a cleaning", 0.0)
    policy.on_caller_stopped(1.0)
    policy.on_tick(1.25)
    assert policy.on_caller_started(1.3) == []


def test_learned_pause_is_clamped_and_ignores_long_gaps():
    policy = CommitPolicy(RouterParams(speculate=False))
    policy.on_caller_started(0.0)
    policy.on_partial("so I was", 0.2)
    policy.on_caller_stopped(0.5)
    policy.on_caller_started(3.5)  # 3 s is no mid-sentence pause (longer than max_wait_s)
    assert policy.learned_pause_s is None
    policy.on_caller_stopped(4.0)
    policy.on_caller_started(4.9)
    assert policy.learned_pause_s == approx(0.9)
    assert policy.required_wait(False) == approx(1.0)  # max_silence_s
    assert policy.required_wait(True) == approx(1.7)


def test_params_are_validated():
    with pytest.raises(ValidationError):
        RouterParams(min_silence_s=0.5, max_silence_s=0.2)
    with pytest.raises(ValidationError):
        RouterParams(stable_partials=0)
