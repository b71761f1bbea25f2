"""Call scripts for keypad entries, the watchdog and what stays out of the conversation."""

import pytest

from tests.turns.call_script import Call
from voiceagent.turns import decisions as d
from voiceagent.turns.options import TurnTaking


def test_one_digit_is_an_entry_after_the_inter_digit_timeout():
    call = Call()
    call.at(1.0)
    call.dtmf("1")
    call.at(2.9)
    assert call.of(d.KeypadEntered) == []
    call.at(3.05)
    assert [k.digits for k in call.of(d.KeypadEntered)] == ["1"]


def test_the_terminator_ends_an_entry_at_once():
    call = Call()
    call.at(1.0)
    call.dtmf("4")
    call.at(1.3)
    call.dtmf("2")
    call.at(1.6)
    call.dtmf("#")
    assert [k.digits for k in call.of(d.KeypadEntered)] == ["42"]
    assert call.when(d.KeypadEntered) == [1.6]


def test_an_entry_left_to_the_llm_is_a_caller_turn():
    call = Call()
    call.at(1.0)
    call.dtmf("4")
    call.dtmf("2")
    call.dtmf("#")
    call._record(call.engine.keypad_turn(call.now, "42"))
    [commit] = call.commits
    assert commit.text == "The caller pressed 4 2 on the keypad."
    assert commit.context is not None
    assert call.user_messages == ["The caller pressed 4 2 on the keypad."]


def test_a_digit_while_the_agent_speaks_interrupts_it():
    call = Call()
    call.at(0.5)
    call.agent_starts()
    call.at(1.0)
    call.dtmf("0")
    assert [i.reason for i in call.of(d.Interrupt)] == ["dtmf"]


def test_a_digit_before_the_reply_is_audible_cancels_it():
    call = Call()
    call.speaks(0.0, 1.0)
    call.final("Hello?", 0.0, 1.2)
    call.at(1.5)
    assert call.commits
    call.dtmf("1")
    assert [c.reason for c in call.of(d.CancelReply)] == ["dtmf"]


def test_a_stalled_reply_is_rerun_then_a_fallback_is_spoken():
    call = Call()
    call.speaks(0.0, 1.0)
    call.final("What are your hours?", 0.0, 1.2)
    call.at(1.5)
    call.at(1.5 + 6.05)
    assert [r.reason for r in call.of(d.StartReply)] == ["watchdog"]
    call.at(1.5 + 12.1)
    [say] = call.of(d.Say)
    assert say.reason == "fallback" and not say.in_context


def test_a_silent_caller_is_reprompted_and_the_reprompt_stays_out_of_the_conversation():
    call = Call()
    call.at(1.0)
    call.agent_starts()
    call.at(3.0)
    call.agent_stops()
    call.heard("Would you like to book it?")
    call.at(13.1)
    [say] = call.of(d.Say)
    assert say.reason == "reprompt" and not say.in_context
    call.agent_starts()
    call.at(14.0)
    call.agent_stops()
    call.heard("Are you still there?", in_context=False)
    assert call.engine.conversation.messages == [
        {"role": "assistant", "content": "Would you like to book it?"}
    ]


def test_unknown_or_out_of_range_options_are_rejected():
    with pytest.raises(ValueError, match="min_silnce_s"):
        TurnTaking.model_validate({"endpointing": {"min_silnce_s": 0.9}})
    with pytest.raises(ValueError, match="max_wait_s"):
        TurnTaking.model_validate({"endpointing": {"max_wait_s": -3}})
    with pytest.raises(ValueError, match="template"):
        TurnTaking.model_validate({"dtmf": {"template": "no digits here"}})
