"""What the caller heard: the ledger trusts mark echoes, and only until a clear."""

from __future__ import annotations

from voiceagent.clock import ManualClock
from voiceagent.transports.twilio.ledger import FRAME_S, PlaybackLedger, PlayoutPacer, cut_at_word

GREETING = "Hello, thanks for calling Bright Smile Dental."
QUESTION = "How can I help you today?"
OFFER = "We have openings on Tuesday and Thursday."


class Wire:
    """The output's sender, simulated: queued audio goes out frame by frame, ≤ 200 ms ahead."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.pacer = PlayoutPacer(0.2)
        self.ledger = PlaybackLedger(clock, buffered=self.pacer.buffered)
        self.queued: dict[int, float] = {}
        self.paused = False

    def queue(self, turn_id: int, seconds: float) -> None:
        self.queued[turn_id] = self.queued.get(turn_id, 0.0) + seconds
        self._send()

    def advance(self, seconds: float) -> None:
        for _ in range(round(seconds / FRAME_S)):
            self.clock.advance(FRAME_S)
            self._send()

    def _send(self) -> None:
        now = self.clock.now()
        for turn_id, left in self.queued.items():
            while not self.paused and left > 1e-9 and self.pacer.send_delay(now) <= 1e-9:
                self.pacer.on_sent(now)
                self.ledger.on_sent(turn_id)
                left -= FRAME_S
            self.queued[turn_id] = left


def agent_turn(clock: ManualClock) -> PlaybackLedger:
    """Turn 1: three segments of 2.0 s, 1.0 s and 2.0 s, queued at once from t0."""
    wire = Wire(clock)
    ledger = wire.ledger
    ledger.start_turn(1)
    ledger.add_segment(1, "a1.1", GREETING, 2.0)
    ledger.add_segment(1, "a1.2", QUESTION, 1.0)
    ledger.add_segment(1, "a1.3", OFFER, 2.0)
    ledger.complete_turn(1)
    wire.queue(1, 5.0)
    ledger.wire = wire  # type: ignore[attr-defined]
    return ledger


def wait(ledger: PlaybackLedger, seconds: float) -> None:
    ledger.wire.advance(seconds)  # type: ignore[attr-defined]


def test_every_mark_echoed_means_the_whole_turn_was_heard() -> None:
    clock = ManualClock()
    ledger = agent_turn(clock)
    for name, after in (("a1.1", 2.0), ("a1.2", 1.0), ("a1.3", 2.0)):
        assert not ledger.is_fully_played(1)
        wait(ledger, after)
        assert ledger.on_mark(name) == 1
    assert ledger.is_fully_played(1)
    report = ledger.close_turn(1, interrupted=False)
    assert report.text == report.full_text == f"{GREETING} {QUESTION} {OFFER}"
    assert report.unheard_text == "" and not report.interrupted


def test_caller_barges_in_40_percent_into_the_second_segment() -> None:
    clock = ManualClock()
    ledger = agent_turn(clock)
    wait(ledger, 2.0)
    ledger.on_mark("a1.1")  # greeting played
    wait(ledger, 0.4)  # 0.4 s into the 1.0 s question
    ledger.on_clear()
    # Twilio flushes and echoes every outstanding mark at once: they prove nothing.
    assert ledger.on_mark("a1.2") is None
    assert ledger.on_mark("a1.3") is None
    report = ledger.close_turn(1, interrupted=True)
    # 40% of "How can I help you today?" (25 chars → 10) covers "How can I" (9 chars).
    assert report.text == f"{GREETING} How can I"
    assert report.unheard_text == f"help you today? {OFFER}"
    assert report.full_text == f"{GREETING} {QUESTION} {OFFER}"
    assert report.interrupted


def test_barge_in_during_the_first_segment_counts_from_its_first_send() -> None:
    clock = ManualClock()
    ledger = agent_turn(clock)
    wait(ledger, 0.6)  # 30% of the 2 s greeting: 13.8 of its 46 characters
    ledger.on_clear()
    assert ledger.heard_text(1) == "Hello, thanks"
    report = ledger.close_turn(1, interrupted=True)
    assert report.text == "Hello, thanks"


def test_barge_in_before_any_audio_was_sent_means_nothing_was_heard() -> None:
    clock = ManualClock()
    ledger = PlaybackLedger(clock)
    ledger.start_turn(4)
    ledger.add_segment(4, "a4.1", GREETING, 2.0)
    clock.advance(1.0)
    ledger.on_clear()
    report = ledger.close_turn(4, interrupted=True)
    assert report.text == "" and report.unheard_text == GREETING


def test_marks_echoed_after_a_clear_never_count_even_much_later() -> None:
    clock = ManualClock()
    ledger = agent_turn(clock)
    wait(ledger, 0.1)
    ledger.on_clear()
    wait(ledger, 10.0)
    for name in ("a1.1", "a1.2", "a1.3"):
        assert ledger.on_mark(name) is None
    assert not ledger.is_fully_played(1)
    assert ledger.heard_text(1) == ""  # 0.1 s of 2 s: not even "Hello," (6/46 > 5%)


def test_an_underrun_starts_the_segment_at_its_first_send_not_the_previous_echo() -> None:
    # TTS was slow: the question's audio reached Twilio 1 s after the greeting finished.
    clock = ManualClock()
    wire = Wire(clock)
    ledger = wire.ledger
    ledger.start_turn(2)
    ledger.add_segment(2, "a2.1", GREETING, 2.0)
    wire.queue(2, 2.0)
    wire.advance(2.0)
    ledger.on_mark("a2.1")
    wire.advance(1.0)
    ledger.add_segment(2, "a2.2", QUESTION, 1.0)
    wire.queue(2, 1.0)
    wire.advance(0.2)
    ledger.on_clear()
    assert ledger.heard_text(2) == f"{GREETING} How"


def test_a_paused_turn_is_not_counted_as_played() -> None:
    # The caller coughed 0.4 s into the question: the agent's audio stopped for 1 s.
    clock = ManualClock()
    ledger = agent_turn(clock)
    wait(ledger, 2.0)
    ledger.on_mark("a1.1")
    wait(ledger, 0.2)
    ledger.wire.paused = True  # type: ignore[attr-defined]
    wait(ledger, 1.0)  # what Twilio held (≤ 0.2 s) played out, then silence
    ledger.on_clear()
    assert ledger.heard_text(1) == f"{GREETING} How can I"


def test_a_segment_whose_time_is_up_but_whose_echo_is_in_flight_counts_whole() -> None:
    clock = ManualClock()
    ledger = agent_turn(clock)
    wait(ledger, 2.0)
    ledger.on_mark("a1.1")
    wait(ledger, 1.3)  # the question (1 s) finished; its echo has not arrived yet
    ledger.on_clear()
    assert ledger.heard_text(1) == f"{GREETING} {QUESTION}"


def test_text_without_new_audio_joins_its_neighbour() -> None:
    clock = ManualClock()
    ledger = PlaybackLedger(clock)
    ledger.start_turn(3)
    ledger.add_text(3, "Sure.")  # before any audio: belongs to the first segment
    ledger.on_sent(3, 1.0)
    ledger.add_segment(3, "a3.1", "One moment", 1.0)
    ledger.add_text(3, "please.")  # no new audio: part of the last segment
    assert ledger.full_text(3) == "Sure. One moment please."
    clock.advance(1.0)
    ledger.on_mark("a3.1")
    ledger.complete_turn(3)
    assert ledger.is_fully_played(3)


def test_a_turn_closed_by_estimate_without_echoes_counts_as_heard() -> None:
    clock = ManualClock()
    ledger = agent_turn(clock)
    wait(ledger, 6.0)
    report = ledger.close_turn(1, interrupted=False)
    assert report.text == report.full_text
    assert not ledger.has_turn(1)
    assert ledger.on_mark("a1.1") is None  # forgotten


def test_unknown_marks_prove_nothing() -> None:
    ledger = agent_turn(ManualClock())
    assert ledger.on_mark("z9.9") is None
    assert ledger.close_turn(42, interrupted=True).text == ""


def test_cut_at_word_keeps_only_whole_words() -> None:
    text = "How can I help you today?"
    assert cut_at_word(text, 0.0) == ""
    assert cut_at_word(text, 0.1) == ""  # 2.5 chars: "How" not finished
    assert cut_at_word(text, 0.12) == "How"  # 3 chars
    assert cut_at_word(text, 0.5) == "How can I"  # "help" would end at 14 > 12.5
    assert cut_at_word(text, 0.6) == "How can I help"
    assert cut_at_word(text, 0.99) == "How can I help you"
    assert cut_at_word(text, 1.0) == text
    assert cut_at_word("", 0.5) == ""


def test_a_mark_sent_again_after_a_soft_clear_counts_only_under_its_new_name() -> None:
    # Paused 1.9 s into the greeting: Twilio held its last 0.1 s and mark a1.1 (sent 0.2 s
    # ahead). The clear echoes a1.1 at once; the mark goes again as a1.1r1 after that audio.
    clock = ManualClock()
    ledger = agent_turn(clock)
    wait(ledger, 1.9)
    ledger.wire.paused = True  # type: ignore[attr-defined]
    ledger.take_back(1, 0.2)  # everything sent but not played goes back to the queue
    ledger.wire.pacer.on_clear(clock.now())  # type: ignore[attr-defined]
    assert ledger.resend_mark("a1.1", "a1.1r1") and ledger.is_outstanding("a1.1r1")
    assert ledger.on_mark("a1.1") is None  # the clear's echo
    assert ledger.heard_text(1) == "Hello, thanks for calling Bright Smile"  # 95 %
    wait(ledger, 1.0)  # a long "uh-huh": nothing more is heard
    assert ledger.heard_text(1) == "Hello, thanks for calling Bright Smile"
    assert ledger.on_mark("a1.1r1") == 1  # after the resume, the new name's echo
    assert ledger.heard_text(1) == GREETING
    assert not ledger.resend_mark("a1.1r1", "a1.1r2")  # echoed: nothing to send again
