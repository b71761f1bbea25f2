"""Pacing: agent audio goes to Twilio at real time, never more than lead_ms ahead."""

from __future__ import annotations

import pytest

from voiceagent.clock import ManualClock
from voiceagent.transports.twilio.ledger import FRAME_S, PlayoutPacer


def send_until_blocked(pacer: PlayoutPacer, clock: ManualClock) -> int:
    sent = 0
    while pacer.send_delay(clock.now()) == 0.0:
        pacer.on_sent(clock.now())
        sent += 1
        assert sent < 1000
    return sent


def test_first_words_go_out_in_a_200ms_burst_then_one_frame_per_20ms() -> None:
    clock = ManualClock()
    pacer = PlayoutPacer(lead_s=0.2)
    assert send_until_blocked(pacer, clock) == 10  # 10 × 20 ms = the lead
    assert pacer.buffered(clock.now()) == pytest.approx(0.2)
    assert pacer.send_delay(clock.now()) == pytest.approx(FRAME_S)
    for _ in range(50):
        clock.advance(FRAME_S)
        assert send_until_blocked(pacer, clock) == 1
        assert pacer.buffered(clock.now()) <= 0.2 + 1e-9


def test_a_sender_loop_plays_two_seconds_in_real_time() -> None:
    clock = ManualClock()
    pacer = PlayoutPacer(lead_s=0.2)
    t0 = clock.now()
    for _ in range(100):  # 2 s of audio
        clock.advance(pacer.send_delay(clock.now()))
        assert pacer.buffered(clock.now()) <= 0.2 - FRAME_S + 1e-9
        pacer.on_sent(clock.now())
    # The last frame went out when 0.2 s of audio was still ahead of play-out.
    assert clock.now() - t0 == pytest.approx(2.0 - 0.2, abs=1e-6)
    assert pacer.play_end - t0 == pytest.approx(2.0, abs=1e-6)


def test_after_an_underrun_the_buffer_refills_from_now() -> None:
    # TTS was slow: Twilio ran dry 0.5 s ago. Nothing is owed for the gap.
    clock = ManualClock()
    pacer = PlayoutPacer(lead_s=0.2)
    send_until_blocked(pacer, clock)
    clock.advance(0.7)
    assert pacer.buffered(clock.now()) == 0.0
    assert send_until_blocked(pacer, clock) == 10
    assert pacer.play_end == pytest.approx(clock.now() + 0.2)


def test_clear_empties_the_buffer_and_the_next_turn_starts_at_once() -> None:
    clock = ManualClock()
    pacer = PlayoutPacer(lead_s=0.2)
    send_until_blocked(pacer, clock)
    clock.advance(0.05)
    pacer.on_clear(clock.now())
    assert pacer.buffered(clock.now()) == 0.0
    assert pacer.send_delay(clock.now()) == 0.0
    assert send_until_blocked(pacer, clock) == 10


def test_a_shallower_lead_sends_a_smaller_burst() -> None:
    clock = ManualClock()
    assert send_until_blocked(PlayoutPacer(lead_s=0.1), clock) == 5
    assert send_until_blocked(PlayoutPacer(lead_s=0.02), clock) == 1
