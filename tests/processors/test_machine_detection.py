"""Person or machine: the decision core fed the call's events at their audio times."""

from __future__ import annotations

from voiceagent.processors.beep import Beep
from voiceagent.processors.machine_detection import MachineDetection, Phase

FRAME_S = 0.02


class Line:
    """The callee's side of an outbound call, in audio time (one tick per 20 ms frame)."""

    def __init__(self, *, own: bool = True) -> None:
        self.core = MachineDetection(own=own)
        self.t = 0.0

    def run_until(self, t: float) -> None:
        while self.t + 1e-9 < t:
            self.t = round(self.t + FRAME_S, 6)
            self.core.tick(self.t)

    def speech(self, start: float, end: float, *, words: str = "") -> None:
        self.run_until(start)
        self.core.speech_started(start)
        if words:
            self.run_until(start + 0.5)
            self.core.transcript(self.t, words)
        self.run_until(end)
        self.core.speech_stopped(end)

    def beep(self, start: float, seconds: float = 0.5, hz: float = 1000.0) -> None:
        self.run_until(start + 0.15)
        self.core.beep(self.t, Beep(hz, 0.15, ended=False))
        self.run_until(start + seconds)
        self.core.beep(self.t, Beep(hz, seconds, ended=True))

    def verdicts(self) -> list[tuple[str, str, float]]:
        return [(d.answered_by, d.evidence, round(d.at_s, 2)) for d in self.core.decisions]


def test_a_person_says_hello_and_waits():
    line = Line()
    line.speech(0.8, 1.4, words="Hello?")
    line.run_until(5.0)
    assert line.verdicts() == [("human", "short_first_utterance", 2.6)]  # 1.2 s after "Hello?"
    assert not line.core.active


def test_a_person_who_replies_at_length_after_the_greeting_is_still_a_person():
    line = Line()
    line.speech(4.5, 9.0, words="Sorry, I'm not available on Tuesday, you have reached me late")
    line.run_until(11.0)  # it began after the agent's greeting: not a recording's words
    assert line.verdicts() == [("human", "short_first_utterance", 10.2)]


def test_a_greeting_that_goes_on_is_a_machine_then_its_silence_ends_it():
    line = Line()
    line.speech(0.5, 2.0)
    line.speech(2.4, 4.2)  # a short pause inside the greeting, then more
    line.run_until(9.0)
    assert line.verdicts() == [
        ("machine_start", "long_greeting", 3.5),  # 3 s after it began, still going
        ("machine_end_silence", "silence", 6.2),  # 2 s of quiet after the last word
    ]


def test_the_wording_gives_a_machine_away_at_once():
    line = Line()
    line.speech(0.4, 1.8, words="Please leave a message")
    assert line.verdicts() == [("machine_start", "wording", 0.9)]
    line.beep(2.5)
    assert line.verdicts()[-1] == ("machine_end_beep", "beep", 3.0)


def test_a_beep_alone_is_a_machine_and_ends_its_greeting():
    line = Line()
    line.beep(0.6)
    assert line.verdicts() == [("machine_start", "beep", 0.76), ("machine_end_beep", "beep", 1.1)]


def test_a_greeting_with_no_end_is_given_up_on():
    line = Line()
    line.speech(0.3, 30.0, words="you have reached")  # never stops
    line.run_until(31.0)
    assert [v[0] for v in line.verdicts()] == ["machine_start", "machine_end_other"]


def test_nobody_speaks_and_nothing_is_decided():
    line = Line()
    line.run_until(11.0)
    assert line.verdicts() == [("unknown", "silence", 10.0)]
    assert line.core.phase is Phase.UNDECIDED


def test_with_twilio_amd_only_twilio_says_machine_and_the_audio_finds_the_end():
    line = Line(own=False)
    line.speech(0.4, 5.0, words="you have reached Sam, leave a message")
    assert line.verdicts() == []  # neither the length nor the words decide here
    line.core.twilio(line.t, "machine_start")
    line.beep(5.6)
    assert [v[:2] for v in line.verdicts()] == [
        ("machine_start", "twilio_amd"),
        ("machine_end_beep", "beep"),
    ]


def test_twilio_says_human_and_a_later_beep_changes_nothing():
    line = Line(own=False)
    line.core.twilio(1.0, "human")
    line.beep(3.0)
    assert line.verdicts() == [("human", "twilio_amd", 1.0)]


def test_twilio_detect_message_end_gives_the_end_directly():
    line = Line(own=False)
    assert line.core.twilio(7.5, "machine_end_beep").answered_by == "machine_end_beep"
    assert line.core.phase is Phase.GREETING_ENDED
    assert line.core.twilio(8.0, "fax") is None  # decided already


def test_early_first_words_are_held_until_the_verdict_late_ones_never():
    person = Line()
    assert person.core.holds_turns  # a greeting may begin at once
    person.run_until(0.8)
    person.core.speech_started(0.8)
    assert person.core.holds_turns  # "Hello?" may be a recording's first word
    person.run_until(1.4)
    person.core.speech_stopped(1.4)
    person.run_until(2.5)
    assert person.core.holds_turns  # a pause shorter than pause_s: still undecided
    person.run_until(2.6)
    assert person.verdicts() == [("human", "short_first_utterance", 2.6)]
    assert not person.core.holds_turns

    machine = Line()
    machine.speech(0.5, 4.0, words="Hi, this is Sam")
    assert machine.verdicts() == [("machine_start", "long_greeting", 3.5)]
    assert not machine.core.holds_turns  # decided: the stage drops what it held

    late = Line()
    late.run_until(3.0)
    assert late.core.holds_turns
    late.run_until(3.1)
    assert not late.core.holds_turns  # a recording would have begun by now
    late.run_until(4.5)
    late.core.speech_started(4.5)  # a person answering the agent's greeting
    assert not late.core.holds_turns

    wordy = Line()  # the STT's words can come before the VAD's start
    wordy.run_until(2.5)
    wordy.core.transcript(2.5, "Hi")
    wordy.run_until(3.5)
    wordy.core.speech_started(3.5)
    assert wordy.core.holds_turns


def test_with_twilio_amd_the_hold_lasts_until_twilio_says_or_listening_ends():
    line = Line(own=False)
    line.speech(0.6, 1.2)
    line.run_until(5.0)
    assert line.core.holds_turns  # a pause may be one inside a greeting: only Twilio knows
    line.core.twilio(line.t, "human")
    assert not line.core.holds_turns
    unanswered = Line(own=False)
    unanswered.speech(0.6, 1.2)
    unanswered.run_until(unanswered.core.params.listen_s)
    assert unanswered.verdicts() == [("unknown", "listen_timeout", 30.0)]
    assert not unanswered.core.holds_turns
