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
