"""Call scripts for the commit: when the caller's turn is over, on a streaming STT that lags."""

from tests.turns.call_script import Call
from voiceagent.turns import decisions as d

BOOKING = "I'd like to book an appointment for next Tuesday."


def test_a_stale_interim_then_a_late_final_is_one_turn_with_every_word():
    # Caller says the whole sentence 0.0-2.6 s; the STT's interims lag ~0.7 s behind the audio.
    call = Call()
    call.speaks(0.0, 2.6)
    call.partial("I'd like to book", 0.0, 1.2)  # at 2.8 s: recognition of the first 1.2 s
    call.at(3.0)
    call.partial("I'd like to book an appointment", 0.0, 2.0)
    call.at(3.3)
    assert call.commits == []  # 0.7 s of silence, but the STT has not heard the end yet
    call.final(BOOKING, 0.0, 2.8)
    call.at(4.5)
    assert [c.text for c in call.commits] == [BOOKING]
    assert call.user_messages == [BOOKING]
    # The late final is what it committed on, so nothing is revised afterwards.
    assert call.of(d.Revise) == []


def test_the_commit_waits_for_a_covering_transcript_then_gives_up_at_max_stt_wait():
    call = Call()
    call.speaks(0.0, 2.6)
    call.partial("I'd like to book an appointment", 0.0, 1.9)
    call.at(2.6 + 1.5 - 0.01)
    assert call.commits == []
    call.at(2.6 + 1.6)  # max_stt_wait_s: the STT is too slow, go with what there is
    assert [c.text for c in call.commits] == ["I'd like to book an appointment"]


def test_a_final_arriving_after_a_stale_commit_revises_it_and_the_reply_is_regenerated():
    call = Call()
    call.speaks(0.0, 2.6)
    call.partial("I'd like to book an appointment", 0.0, 1.9)
    call.at(4.2)  # committed on stale words (max_stt_wait_s)
    [commit] = call.commits
    call.at(4.4)
    call.final(BOOKING, 0.0, 2.8)  # words of the same audio: a revision, not a second turn
    [revise] = call.of(d.Revise)
    assert revise.turn_id == commit.turn_id and revise.text == BOOKING
    assert revise.context is not None  # the reply was not audible yet: regenerate it
    assert call.user_messages == [BOOKING]
    assert len(call.commits) == 1


def test_a_revision_after_the_reply_is_audible_corrects_the_conversation_only():
    call = Call()
    call.speaks(0.0, 2.6)
    call.partial("I'd like to book an appointment", 0.0, 1.9)
    call.at(4.2)
    call.agent_starts()  # the caller hears the reply to the stale words
    call.at(4.6)
    call.final(BOOKING, 0.0, 2.8)
    [revise] = call.of(d.Revise)
    assert revise.context is None  # no second answer
    assert call.of(d.StartReply) == []
    assert call.user_messages == [BOOKING]
    assert call.engine.stats.revisions_after_audible == 1


def test_split_is_final_segments_make_one_utterance():
    call = Call()
    call.speaks(0.0, 3.0)
    call.final("Hi,", 0.0, 1.0)  # Deepgram closes a long utterance in pieces
    call.final("I'd like to book a cleaning.", 1.0, 3.2)
    call.at(4.5)
    assert [c.text for c in call.commits] == ["Hi, I'd like to book a cleaning."]


def test_repeated_partials_of_the_same_audio_never_stack_up():
    call = Call()
    call.speaks(0.0, 2.5)
    call.at(2.0)
    call.partial("Hi", 0.0, 0.6)
    call.partial("Hi I'd", 0.0, 1.0)
    call.partial("Hi I'd like to book a teeth cleaning", 0.0, 2.5)
    call.at(2.8)
    call.final("Hi, I'd like to book a teeth cleaning.", 0.0, 2.7)
    call.at(4.0)
    assert [c.text for c in call.commits] == ["Hi, I'd like to book a teeth cleaning."]


def test_a_one_word_answer_is_a_turn():
    call = Call()
    call.speaks(1.0, 1.4)
    call.at(1.7)
    call.final("Yeah.", 1.0, 1.6)
    call.at(3.0)
    assert [c.text for c in call.commits] == ["Yeah."]


def test_an_unfinished_number_waits_longer_than_a_finished_sentence():
    # "Um, my number is" then 0.6 s of thinking, then the digits: one turn.
    call = Call()
    call.speaks(0.0, 1.2)
    call.final("Um, my number is", 0.0, 1.4)
    call.at(1.2 + 0.6)
    assert call.commits == []  # a finished sentence would have committed by now
    call.speaks(1.8, 3.6)
    call.final("5 5 5, 1 2 3 4.", 1.8, 3.8)
    call.at(5.5)
    assert [c.text for c in call.commits] == ["Um, my number is 5 5 5, 1 2 3 4."]


def test_an_stt_that_drops_the_trailing_is_still_waits_after_my_number():
    call = Call()
    call.speaks(0.0, 1.2)
    call.final("Um. My number", 0.0, 1.4)
    call.at(1.2 + 0.6)
    assert call.commits == []


def test_the_rest_after_a_mid_sentence_pause_is_never_lost():
    call = Call()
    call.speaks(0.0, 1.0)
    call.final("Actually wait,", 0.0, 1.2)
    call.speaks(1.6, 3.8)  # a 0.6 s pause, then the request
    call.partial("can you make it", 1.6, 2.8)
    call.at(4.1)
    call.final("can you make it Wednesday instead?", 1.6, 4.0)
    call.at(5.5)
    assert [c.text for c in call.commits] == ["Actually wait, can you make it Wednesday instead?"]


def test_speech_after_a_commit_before_the_reply_is_heard_continues_the_same_turn():
    call = Call()
    call.speaks(0.0, 1.5)
    call.final("Do you have anything open next Tuesday", 0.0, 1.7)
    call.at(2.0)
    [first] = call.commits
    call.speaks(2.3, 3.5)  # "maybe in the afternoon?": the reply must not be heard twice
    assert call.of(d.CancelReply)
    call.final("maybe in the afternoon?", 2.3, 3.7)
    call.at(5.0)
    assert len(call.commits) == 2
    assert call.user_messages == ["Do you have anything open next Tuesday maybe in the afternoon?"]
    assert call.engine.stats.regrets == 1


def test_a_cough_after_the_commit_gets_the_reply_after_all():
    call = Call()
    call.speaks(0.0, 1.5)
    call.final("What time do you close on Friday?", 0.0, 1.7)
    call.at(2.0)
    assert len(call.commits) == 1
    call.speaks(2.2, 2.5)  # a cough: speech, but no words
    assert call.of(d.CancelReply)
    call.at(3.5)
    assert [r.reason for r in call.of(d.StartReply)] == ["wordless_resume"]


def test_the_llm_starts_early_and_the_commit_releases_it():
    call = Call()
    call.speaks(0.0, 2.0)
    call.final("How much does a cleaning cost?", 0.0, 2.2)
    [spec] = call.of(d.Speculate)
    call.at(3.0)
    [commit] = call.commits
    assert commit.speculative_hit and commit.generation == spec.generation
    assert commit.context is None  # the held reply is released, no new request


def test_speculation_is_replaced_when_the_words_change():
    call = Call()
    call.speaks(0.0, 2.0)
    call.partial("How much does a", 0.0, 1.2)
    call.final("How much does a cleaning cost?", 0.0, 2.2)
    call.at(3.0)
    assert len(call.of(d.Speculate)) == 2
    assert [c.reason for c in call.of(d.CancelSpeculation)] == ["text_changed"]
    assert call.commits[0].speculative_hit


def caller_pauses_mid_sentence(call: Call) -> None:
    """Caller says "How much does a cleaning cost?" and, still talking, adds more (0-4 s);
    the STT's interims settle on the question twice while the VAD still hears speech."""
    call.starts_speaking(0.0, vad_at=0.3)
    call.at(1.6)
    call.partial("How much does a cleaning cost?", 0.0, 1.5)
    call.at(1.9)
    call.partial("How much does a cleaning cost?", 0.0, 1.5)
    call.at(2.5)


def test_by_default_no_llm_request_starts_while_the_caller_is_still_speaking():
    call = Call()
    caller_pauses_mid_sentence(call)
    assert call.of(d.Speculate) == []  # stable, complete-sounding, but the caller is talking


def test_speculation_while_speaking_is_an_option_and_starts_on_stable_words():
    call = Call(speculation={"while_speaking": True})
    caller_pauses_mid_sentence(call)
    [spec] = call.of(d.Speculate)
    assert spec.text == "How much does a cleaning cost?"


def test_a_new_stt_window_begun_as_the_caller_resumed_is_new_speech_not_a_revision():
    # Whisper-like: windows without word times, each from its VAD start. "Great," is committed
    # at the comma; "thank you so much" is a new window that starts 0.1 s after the sound.
    call = Call()
    call.speaks(0.0, 0.5)
    call.at(0.75)
    call.final("Great", 0.3, 0.7)
    call.at(1.0)
    [first] = call.commits
    call.speaks(1.1, 2.3)
    call.partial("Thank you so much.", 1.2, 2.4)
    call.at(2.6)
    call.final("Thank you so much.", 1.2, 2.5)
    call.at(4.0)
    assert call.of(d.Revise) == []
    assert len(call.commits) == 2
    assert call.user_messages == ["Great Thank you so much."]


def test_neighbouring_windows_with_rounded_times_both_keep_their_words():
    # Deepgram closes "Great," then "thank you so much." then "Goodbye!": the windows tile the
    # audio, but their rounded times overlap by a few milliseconds.
    call = Call()
    call.speaks(0.0, 3.0)
    call.final("Great,", 0.0, 0.62)
    call.final("thank you so much.", 0.615, 2.1)
    call.final("Goodbye!", 2.098, 3.2)
    call.at(4.5)
    assert [c.text for c in call.commits] == ["Great, thank you so much. Goodbye!"]


def thinking_mid_number() -> Call:
    """ "Um, my number is" (0-1.2 s), then 0.9 s of thinking: the digits start at 2.1 s."""
    call = Call()
    call.speaks(0.0, 1.2)
    call.final("Um, my number is", 0.0, 1.4)
    call.at(2.1)
    return call


def the_digits_end_one_turn(call: Call) -> None:
    """The digits' words come (2.1-3.6 s): one turn holds the whole number, with no regret."""
    call.final("five five five, one two three four.", 2.1, 3.6)
    call.at(5.0)
    assert [c.text for c in call.commits] == [
        "Um, my number is five five five, one two three four."
    ]
    assert call.engine.stats.regrets == 0


def test_no_commit_while_the_callers_line_is_loud_again():
    # The VAD confirms the digits only 0.3 s after their first sound. The commit due in that
    # gap must wait for the VAD.
    call = thinking_mid_number()
    call.sound(True)  # the caller goes on (a commit was due at 1.2 + 1.2 = 2.4)
    call.at(2.4)
    assert call.commits == []
    call.speech_start(began=2.1)
    call.at(3.5)
    call.sound(False)
    call.speech_stop(ended=3.4)
    the_digits_end_one_turn(call)


def test_no_commit_when_the_first_word_after_a_pause_is_over_before_the_vad_confirms_it():
    # As above, but the first "five" is short: the line is quiet again at 2.26, and the VAD
    # confirms the speech only at 2.5. The commit due at 2.4 (1.2 + 1.2) waits for the VAD.
    call = thinking_mid_number()
    call.sound(True)  # "five"
    call.at(2.26)
    call.sound(False)
    call.at(2.45)
    assert call.commits == []
    call.at(2.5)
    call.speech_start(began=2.1)
    call.at(3.5)
    call.speech_stop(ended=3.4)
    the_digits_end_one_turn(call)


def test_a_click_after_the_pause_delays_the_commit_by_the_vad_judgement_only():
    call = Call()
    call.speaks(0.0, 1.0)
    call.final("What time do you open?", 0.0, 1.1)
    call.at(1.3)
    call.sound(True)  # a click on the line (the commit was due at 1.5); the VAD hears no speech
    call.at(1.34)
    call.sound(False)
    call.at(1.85)
    assert call.commits == []
    call.at(1.91)
    assert [c.text for c in call.commits] == ["What time do you open?"]
