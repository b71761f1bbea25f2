"""InterruptionPolicy and the backchannel lexicon: call scripts as (event, time), no frames.

The agent starts speaking at t=100 s in every script unless said otherwise.
"""

import pytest

from voiceagent.processors.backchannel import content_words, is_backchannel, is_clear_word
from voiceagent.processors.interruption_policy import (
    BargeInParams,
    GateAction,
    InterruptionPolicy,
)

AGENT_START = 100.0


def agent_talking(**params) -> InterruptionPolicy:
    policy = InterruptionPolicy(BargeInParams(**params))
    policy.on_agent_started(AGENT_START)
    return policy


# -- backchannel lexicon --------------------------------------------------------------------


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


# -- while the agent is silent --------------------------------------------------------------


def test_agent_silent_everything_passes():
    policy = InterruptionPolicy()
    policy.on_caller_started(10.0, start_secs=0.15)
    assert policy.on_transcript("uh-huh", final=False, now=10.2) is GateAction.FORWARD
    assert policy.on_transcript("book me for Tuesday", final=True, now=11.0) is GateAction.FORWARD
    assert policy.next_deadline() is None
    assert policy.stats.interruptions == 0


# -- backchannels, echo, noise --------------------------------------------------------------


def test_caller_says_uh_huh_for_400ms_is_swallowed_not_an_interruption():
    policy = agent_talking()
    policy.on_caller_started(AGENT_START + 2.0, start_secs=0.15)
    assert policy.on_transcript("uh", final=False, now=AGENT_START + 2.1) is GateAction.HOLD
    assert policy.on_transcript("uh-huh", final=False, now=AGENT_START + 2.25) is GateAction.HOLD
    policy.on_caller_stopped(AGENT_START + 2.45, stop_secs=0.2)
    assert policy.on_transcript("Uh-huh.", final=True, now=AGENT_START + 2.5) is GateAction.HOLD
    assert policy.next_deadline() is None
    assert policy.tick(AGENT_START + 3.0) is GateAction.NONE
    # the agent talks on and finishes 3 s later: the held "uh-huh" is thrown away
    assert policy.on_agent_stopped(AGENT_START + 5.5) is GateAction.DISCARD
    assert policy.stats.interruptions == 0
    assert policy.stats.backchannels_ignored == 1
    # a late duplicate final of that utterance is still swallowed after the agent stopped
    assert policy.on_transcript("uh huh", final=True, now=AGENT_START + 5.6) is GateAction.DROP


def test_caller_says_wait_stop_interrupts_once_speech_is_long_enough():
    policy = agent_talking()
    policy.on_caller_started(AGENT_START + 1.15, start_secs=0.15)  # speech began at +1.0
    # the words come early (+1.2): 0.2 s of speech is not enough yet; decide at +1.3
    assert policy.on_transcript("wait", final=False, now=AGENT_START + 1.2) is GateAction.HOLD
    assert policy.next_deadline() == pytest.approx(AGENT_START + 1.3)
    assert policy.tick(AGENT_START + 1.29) is GateAction.NONE
    assert policy.tick(AGENT_START + 1.3) is GateAction.INTERRUPT
    assert policy.stats.interruptions == 1
    assert not policy.agent_speaking
    # from now on the caller's words go to the router
    assert policy.on_transcript("wait, stop", final=False, now=AGENT_START + 1.4) is (
        GateAction.FORWARD
    )


def test_caller_says_wait_stop_after_min_speech_interrupts_on_that_partial():
    policy = agent_talking()
    policy.on_caller_started(AGENT_START + 1.15, start_secs=0.15)
    assert policy.on_transcript("wait stop", final=False, now=AGENT_START + 1.35) is (
        GateAction.INTERRUPT
    )


def test_caller_speech_starting_100ms_after_agent_is_echo_and_ignored():
    policy = agent_talking()
    policy.on_caller_started(AGENT_START + 0.25, start_secs=0.15)  # began at +0.1
    assert policy.on_transcript("hello there how", final=False, now=AGENT_START + 0.6) is (
        GateAction.DROP
    )
    policy.on_caller_stopped(AGENT_START + 1.0)
    assert policy.stats.echo_guarded == 1
    assert policy.stats.interruptions == 0
    # the next utterance, well after the guard, is judged normally
    policy.on_caller_started(AGENT_START + 2.0, start_secs=0.15)
    assert policy.on_transcript("hold on please", final=False, now=AGENT_START + 2.3) is (
        GateAction.INTERRUPT
    )


def test_echo_guard_zero_is_off_for_headsets():
    policy = agent_talking(echo_guard_s=0.0)
    policy.on_caller_started(AGENT_START + 0.25, start_secs=0.15)
    assert policy.on_transcript("hold on please", final=False, now=AGENT_START + 0.5) is (
        GateAction.INTERRUPT
    )
    assert policy.stats.echo_guarded == 0


def test_caller_coughs_500ms_without_words_does_not_interrupt():
    policy = agent_talking()
    policy.on_caller_started(AGENT_START + 3.15, start_secs=0.15)
    assert policy.tick(AGENT_START + 3.5) is GateAction.NONE
    policy.on_caller_stopped(AGENT_START + 3.7, stop_secs=0.2)
    assert policy.next_deadline() is None
    assert policy.stats.interruptions == 0
    assert policy.agent_speaking


def test_one_clear_word_interrupts_but_one_weak_word_does_not():
    policy = agent_talking()
    policy.on_caller_started(AGENT_START + 2.15, start_secs=0.15)
    assert policy.on_transcript("you", final=False, now=AGENT_START + 2.5) is GateAction.HOLD
    assert policy.on_transcript("No.", final=False, now=AGENT_START + 2.6) is GateAction.INTERRUPT


def test_short_blurt_under_min_speech_does_not_interrupt():
    policy = agent_talking()
    policy.on_caller_started(AGENT_START + 2.15, start_secs=0.15)  # began at +2.0
    policy.on_caller_stopped(AGENT_START + 2.4, stop_secs=0.2)  # ended at +2.2: 0.2 s
    assert policy.on_transcript("no", final=True, now=AGENT_START + 2.45) is GateAction.HOLD
    assert policy.next_deadline() is None


def test_backchannel_then_real_words_in_one_utterance_interrupts():
    policy = agent_talking()
    policy.on_caller_started(AGENT_START + 2.15, start_secs=0.15)
    assert policy.on_transcript("yeah", final=False, now=AGENT_START + 2.4) is GateAction.HOLD
    assert policy.on_transcript("yeah but wait", final=False, now=AGENT_START + 2.7) is (
        GateAction.INTERRUPT
    )


def test_slow_stt_final_after_caller_stopped_still_interrupts():
    policy = agent_talking()
    policy.on_caller_started(AGENT_START + 2.15, start_secs=0.15)
    policy.on_caller_stopped(AGENT_START + 3.0, stop_secs=0.2)
    assert policy.on_transcript("please stop now", final=True, now=AGENT_START + 3.4) is (
        GateAction.INTERRUPT
    )


def test_words_without_vad_are_judged_by_words():
    policy = agent_talking()
    assert policy.on_transcript("mm-hmm", final=True, now=AGENT_START + 2.0) is GateAction.HOLD
    assert policy.on_transcript("stop that", final=False, now=AGENT_START + 4.0) is (
        GateAction.INTERRUPT
    )


# -- the end of the agent's speech ----------------------------------------------------------


def test_yes_over_the_end_of_a_question_is_released_as_an_answer():
    policy = agent_talking()
    policy.on_caller_started(AGENT_START + 3.05, start_secs=0.15)
    assert policy.on_transcript("yes", final=False, now=AGENT_START + 3.2) is GateAction.HOLD
    policy.on_caller_stopped(AGENT_START + 3.4, stop_secs=0.2)
    assert policy.on_agent_stopped(AGENT_START + 3.3) is GateAction.RELEASE
    assert policy.on_transcript("Yes.", final=True, now=AGENT_START + 3.5) is GateAction.FORWARD


def test_caller_already_talking_when_agent_starts_only_new_words_count():
    policy = InterruptionPolicy()
    policy.on_caller_started(99.0, start_secs=0.15)
    assert policy.on_transcript("so I was thinking", final=False, now=99.8) is GateAction.FORWARD
    policy.on_agent_started(AGENT_START)
    assert policy.on_transcript("so I was thinking um", final=False, now=AGENT_START + 0.1) is (
        GateAction.FORWARD
    )
    assert policy.stats.interruptions == 0
    assert (
        policy.on_transcript(
            "so I was thinking about tuesday instead", final=False, now=AGENT_START + 0.5
        )
        is GateAction.INTERRUPT
    )


# -- false interruptions --------------------------------------------------------------------


def _interrupted_by_noise(**params) -> InterruptionPolicy:
    """Agent talking; a noise burst the STT heard as "stop" opens the gate, then ends."""
    policy = agent_talking(**params)
    policy.on_caller_started(AGENT_START + 2.15, start_secs=0.15)
    assert policy.on_transcript("stop", final=False, now=AGENT_START + 2.4) is GateAction.INTERRUPT
    policy.on_agent_stopped(AGENT_START + 2.45)  # TwilioOutput confirms the clear
    policy.on_caller_stopped(AGENT_START + 2.7, stop_secs=0.2)  # quiet from +2.5
    return policy


def test_false_interruption_resumes_the_unheard_remainder():
    policy = _interrupted_by_noise()
    assert (
        policy.on_agent_heard(
            interrupted=True, unheard_text="at three in the afternoon.", now=AGENT_START + 2.5
        )
        is GateAction.NONE
    )
    assert policy.on_transcript("", final=True, now=AGENT_START + 2.9) is GateAction.FORWARD
    assert policy.next_deadline() == pytest.approx(AGENT_START + 4.0)
    assert policy.tick(AGENT_START + 3.9) is GateAction.NONE
    assert policy.tick(AGENT_START + 4.0) is GateAction.RESUME
    assert policy.take_resume_text() == "at three in the afternoon."
    assert policy.stats.false_interruptions == 1
    assert policy.stats.resumes == 1
    assert policy.next_deadline() is None


def test_words_after_the_interruption_mean_no_resume():
    policy = _interrupted_by_noise()
    policy.on_agent_heard(interrupted=True, unheard_text="at three.", now=AGENT_START + 2.5)
    assert policy.on_transcript("Stop, I meant Tuesday.", final=True, now=AGENT_START + 3.0) is (
        GateAction.FORWARD
    )
    assert policy.next_deadline() is None
    assert policy.tick(AGENT_START + 5.0) is GateAction.NONE
    assert policy.stats.resumes == 0
    assert policy.stats.false_interruptions == 0


def test_resume_waits_for_the_heard_report_if_it_comes_late():
    policy = _interrupted_by_noise()
    assert policy.tick(AGENT_START + 4.0) is GateAction.NONE
    assert policy.stats.false_interruptions == 1
    assert (
        policy.on_agent_heard(interrupted=True, unheard_text="See you then.", now=AGENT_START + 4.1)
        is GateAction.RESUME
    )
    assert policy.take_resume_text() == "See you then."


def test_more_noise_postpones_the_resume_until_quiet():
    policy = _interrupted_by_noise()
    policy.on_agent_heard(interrupted=True, unheard_text="See you then.", now=AGENT_START + 2.5)
    policy.on_caller_started(AGENT_START + 3.5, start_secs=0.15)
    assert policy.next_deadline() is None
    assert policy.tick(AGENT_START + 4.0) is GateAction.NONE
    policy.on_caller_stopped(AGENT_START + 4.2, stop_secs=0.2)
    assert policy.tick(AGENT_START + 5.49) is GateAction.NONE
    assert policy.tick(AGENT_START + 5.5) is GateAction.RESUME


def test_resume_off_counts_the_false_interruption_but_stays_quiet():
    policy = _interrupted_by_noise(resume=False)
    policy.on_agent_heard(interrupted=True, unheard_text="See you then.", now=AGENT_START + 2.5)
    assert policy.tick(AGENT_START + 4.0) is GateAction.NONE
    assert policy.stats.false_interruptions == 1
    assert policy.stats.resumes == 0


def test_agent_speaking_again_cancels_the_resume():
    policy = _interrupted_by_noise()
    policy.on_agent_heard(interrupted=True, unheard_text="See you then.", now=AGENT_START + 2.5)
    policy.on_agent_started(AGENT_START + 3.0)
    assert policy.tick(AGENT_START + 4.0) is GateAction.NONE
    assert policy.stats.resumes == 0
