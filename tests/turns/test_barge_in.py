"""Call scripts for barge-in: from the audio, confirmed by words, never on a backchannel."""

from tests.turns.call_script import Call
from voiceagent.turns import decisions as d


def agent_talking(call: Call, at: float = 0.0) -> Call:
    call.at(at)
    call.agent_starts()
    return call


def test_sustained_speech_interrupts_on_duration_when_the_words_come_1_s_late():
    # "No no, stop, I meant the morning" over the agent; the STT lags a full second.
    call = agent_talking(Call(), 0.0)
    call.at(2.0)
    call.sound(True)
    assert call.of(d.PausePlayback)  # the agent's audio stops at the first sound
    call.at(2.3)
    call.speech_start(began=2.0)
    call.at(2.49)
    assert call.of(d.Interrupt) == []
    call.at(2.51)
    [interrupt] = call.of(d.Interrupt)
    assert interrupt.reason == "duration"
    assert call.when(d.Interrupt) == [2.5]
    call.at(3.6)
    call.sound(False)
    call.at(3.7)
    call.speech_stop(ended=3.5)
    call.at(3.8)
    call.final("No no, stop, I meant the morning.", 2.0, 3.6)
    call.at(5.0)
    assert [c.text for c in call.commits] == ["No no, stop, I meant the morning."]


def test_words_interrupt_before_the_duration_does():
    call = agent_talking(Call(), 0.0)
    call.starts_speaking(1.0, vad_at=1.25)
    call.partial("Wait, stop", 1.0, 1.3)
    assert [i.reason for i in call.of(d.Interrupt)] == ["words"]
    assert call.when(d.Interrupt) == [1.25]


def test_a_backchannel_during_a_slow_stt_never_interrupts():
    call = agent_talking(Call(), 0.0)
    call.starts_speaking(2.0, vad_at=2.3)  # "uh-huh", 0.35 s
    call.at(2.45)
    call.sound(False)
    call.at(2.55)
    call.speech_stop(ended=2.35)
    call.at(3.0)
    assert call.of(d.ResumePlayback) == []  # a comma-length pause: the caller may go on
    call.at(3.1)
    assert call.of(d.ResumePlayback)  # quiet for good (0.6 s): the agent goes on
    call.at(3.4)
    call.final("Uh-huh.", 2.0, 2.5)  # a second late
    call.at(6.0)
    assert call.of(d.Interrupt) == []
    assert call.commits == []
    assert call.engine.stats.backchannels_ignored == 1


def test_a_long_backchannel_is_still_not_a_barge_in_once_words_show_it():
    call = agent_talking(Call(), 0.0)
    call.starts_speaking(2.0, vad_at=2.3)
    call.partial("Yeah, yeah", 2.0, 2.4)
    call.at(2.9)  # 0.9 s of "yeah, yeah, okay": longer than min_duration, shorter than 1.5 s
    assert call.of(d.Interrupt) == []
    call.sound(False)
    call.at(3.5)
    assert call.of(d.Interrupt) == []


def test_sound_at_the_agents_first_syllable_is_echo_not_a_barge_in():
    call = agent_talking(Call(), 1.0)
    call.starts_speaking(1.1, vad_at=1.4)
    call.at(2.5)
    assert call.of(d.Interrupt) == []
    assert call.of(d.PausePlayback) == []


def test_yeah_over_the_end_of_the_agents_question_is_an_answer():
    call = agent_talking(Call(), 0.0)
    call.starts_speaking(3.0, vad_at=3.3)
    call.partial("Yeah.", 3.0, 3.3)
    call.at(3.4)
    call.sound(False)
    call.agent_stops()  # the question ended as the caller answered
    call.at(3.5)
    call.speech_stop(ended=3.35)
    call.final("Yeah.", 3.0, 3.6)
    call.at(5.0)
    assert [c.text for c in call.commits] == ["Yeah."]
    assert call.of(d.Interrupt) == []


def test_a_false_interruption_resumes_what_the_caller_did_not_hear():
    call = agent_talking(Call(), 0.0)
    call.starts_speaking(2.0, vad_at=2.3)  # a door slam the VAD takes for speech
    call.at(2.6)
    assert call.of(d.Interrupt)
    call.sound(False)
    call.heard(
        "Sure, I can help with that.",
        interrupted=True,
        unheard="Let me check the calendar for next week.",
    )
    call.at(2.8)
    call.speech_stop(ended=2.6)
    call.at(2.6 + 1.5 + 0.05)
    [say] = call.of(d.Say)
    assert say.reason == "resume" and say.text == "Let me check the calendar for next week."
    assert call.engine.conversation.messages == [
        {"role": "assistant", "content": "Sure, I can help with that...."}
    ]


def test_a_caller_who_resumes_as_the_reply_starts_is_still_taking_their_turn():
    call = Call()
    call.speaks(0.0, 1.5)
    call.final("Do you have anything open next Tuesday", 0.0, 1.7)
    call.at(2.0)
    call.agent_starts()  # the reply starts just as the caller goes on
    call.starts_speaking(2.1, vad_at=2.3)
    assert [i.reason for i in call.of(d.Interrupt)] == ["regret"]
    call.at(3.3)
    call.sound(False)
    call.speech_stop(ended=3.2)
    call.final("in the morning?", 2.1, 3.4)
    call.at(5.0)
    assert call.user_messages == ["Do you have anything open next Tuesday in the morning?"]
    assert call.of(d.Say) == []  # no false-interruption resume of the cut reply


def test_a_reply_never_starts_over_a_caller_who_sounds():
    call = Call()
    call.speaks(0.0, 1.5)
    call.final("How much is a cleaning", 0.0, 1.7)
    call.at(2.0)
    assert call.commits
    call.sound(True)  # a breath before going on: hold the reply's start
    assert call.of(d.PausePlayback)
    call.at(2.15)
    call.sound(False)
    assert call.of(d.ResumePlayback)


def test_a_comma_inside_the_barge_in_keeps_one_run_and_the_agent_stays_paused():
    # "Wait, | what is your street address?" over the agent; the STT lags a full second.
    call = agent_talking(Call(), 0.0)
    call.starts_speaking(2.0, vad_at=2.3)
    call.at(2.4)
    call.sound(False)  # "Wait," — then a 0.4 s comma pause
    call.at(2.6)
    call.speech_stop(ended=2.4)
    call.at(2.8)
    call.sound(True)  # "what is your street address?": the same run
    assert call.of(d.ResumePlayback) == []  # the agent never came back in the pause
    call.at(2.95)
    assert [i.reason for i in call.of(d.Interrupt)] == ["duration"]
    assert call.when(d.Interrupt) == [2.9]  # 0.4 s of "Wait," + 0.1 s more: 0.5 s of speech


def test_two_quick_backchannels_are_not_sustained_speech():
    # "Uh-huh... yeah." — 0.3 s, a 0.4 s gap, 0.15 s: 0.45 s of sound in all.
    call = agent_talking(Call(), 0.0)
    call.starts_speaking(2.0, vad_at=2.3)
    call.sound(False)
    call.at(2.7)
    call.sound(True)
    call.at(2.85)
    call.sound(False)
    call.at(4.0)
    assert call.of(d.Interrupt) == []


def test_the_duration_counts_from_the_first_loud_frame_not_from_when_it_was_sure():
    # The energy detector needs two loud 20 ms frames: it reports the sound 40 ms late.
    call = agent_talking(Call(), 0.0)
    call.at(2.04)
    call.sound(True, since_s=0.04)
    call.at(2.3)
    call.speech_start(began=2.0)
    call.at(2.55)
    assert call.when(d.Interrupt) == [2.5]


def test_a_backchannel_whose_words_arrive_after_it_was_let_go_is_still_not_a_turn():
    # "Right." over the agent; the STT is so slow that its final comes 1.7 s after the caller
    # stopped, when the overlap is long over and the agent is still talking.
    call = agent_talking(Call(), 0.0)
    call.speaks(8.14, 8.52)
    call.at(10.2)
    call.final("Right.", 8.1, 8.6)
    call.at(12.0)
    assert call.of(d.Interrupt) == []
    assert call.commits == []
    call.agent_stops()
    call.at(16.0)
    assert call.commits == []  # not even once the agent is done


def test_a_clear_word_whose_final_arrives_late_still_stops_the_agent():
    # "No." (0.3 s: too short for the duration rule) over the agent; its words come 2 s late.
    call = agent_talking(Call(), 0.0)
    call.speaks(4.0, 4.3)
    call.at(6.3)
    assert call.of(d.Interrupt) == []  # the agent went on meanwhile
    call.final("No.", 4.0, 4.3)
    [interrupt] = call.of(d.Interrupt)
    assert interrupt.reason == "late_words"
    call.at(8.0)
    assert [c.text for c in call.commits] == ["No."]


def test_yeah_over_the_end_of_a_question_is_an_answer_even_when_its_words_come_late():
    call = agent_talking(Call(), 0.0)
    call.speaks(3.0, 3.3)  # "Yeah." as the question ends
    call.at(3.55)
    call.agent_stops()
    call.at(4.6)
    call.final("Yeah.", 3.0, 3.3)  # a second after the agent stopped
    call.at(6.0)
    assert [c.text for c in call.commits] == ["Yeah."]


def test_wait_then_a_half_second_comma_keeps_the_agent_paused_and_interrupts_on_duration():
    # "Wait," (0.22 s, too short for the VAD) over the agent, a 0.5 s comma, "can you make it
    # Wednesday instead?"; the STT lags a second, so no word helps.
    call = agent_talking(Call(), 0.0)
    call.at(1.0)
    call.sound(True)
    assert call.of(d.PausePlayback)
    call.at(1.22)
    call.sound(False)
    call.at(1.72)
    call.sound(True)  # the caller goes on before the agent does
    assert call.of(d.ResumePlayback) == []
    call.at(2.0)
    call.speech_start(began=1.72)
    [interrupt] = call.of(d.Interrupt)
    assert interrupt.reason == "duration" and call.when(d.Interrupt) == [2.0]
    assert call.of(d.ResumePlayback) == []  # the caller never heard the agent come back
