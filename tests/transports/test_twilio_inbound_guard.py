"""The flood guard judges the caller's pace by Twilio's own timestamps, not by when we read.

When the server's event loop is busy, Twilio's steady 50 messages/s wait in the socket and are
read all at once; that is the server being slow, not the caller flooding, and the call must go
on. A caller that really sends too much is still cut, whatever timestamps it writes.
"""

from __future__ import annotations

from voiceagent.clock import ManualClock
from voiceagent.transports.twilio.inbound_guard import InboundGuard

from .conftest import CallRig, tone_ulaw

FRAME_S = 0.02


def twilio_pace(guard: InboundGuard, clock: ManualClock, start_s: float, seconds: float) -> int:
    """Feed ``seconds`` of media at 50/s, read as they come; return how many were refused."""
    refused = 0
    for n in range(round(seconds / FRAME_S)):
        refused += not guard.admit(start_s + n * FRAME_S)
        clock.advance(FRAME_S)
    return refused


def test_three_seconds_of_media_read_at_once_after_a_stall_are_all_admitted() -> None:
    clock = ManualClock()
    guard = InboundGuard(clock, rate=200.0, burst=100.0)
    assert twilio_pace(guard, clock, 0.0, 2.0) == 0
    clock.advance(3.0)  # the event loop stalls; Twilio keeps sending, nothing is read
    backlog = [guard.admit(2.0 + n * FRAME_S) for n in range(150)]  # then read in one go
    assert all(backlog)
    assert twilio_pace(guard, clock, 5.0, 2.0) == 0


def test_a_backlog_read_at_the_start_of_the_call_is_admitted() -> None:
    clock = ManualClock()
    guard = InboundGuard(clock, rate=200.0, burst=100.0)  # the socket opened
    clock.advance(8.0)  # the call's pipeline was being built: nothing read for 8 s
    assert guard.admit() and guard.admit()  # "connected" and "start", read late
    assert all(guard.admit(n * FRAME_S) for n in range(400))
    assert twilio_pace(guard, clock, 8.0, 2.0) == 0


def test_the_same_stall_judged_by_arrival_time_would_have_cut_the_call() -> None:
    clock = ManualClock()
    guard = InboundGuard(clock, rate=200.0, burst=100.0)
    clock.advance(2.0)
    clock.advance(3.0)
    backlog = [guard.admit() for _ in range(150)]  # no timestamps: only arrival time counts
    assert backlog.count(False) == 50


def test_a_flood_with_honest_looking_timestamps_is_cut_after_the_burst() -> None:
    clock = ManualClock()
    guard = InboundGuard(clock, rate=200.0, burst=100.0)
    flood = [guard.admit(n * FRAME_S) for n in range(1000)]  # 20 s of "audio" in no time
    assert flood.count(True) == 100


def test_timestamps_from_the_future_buy_a_flooder_nothing() -> None:
    clock = ManualClock()
    guard = InboundGuard(clock, rate=200.0, burst=100.0)
    admitted = 0
    for n in range(50):  # each message claims 10 s more; 5 s pass in real time
        admitted += sum(guard.admit(n * 10.0 + k * 0.001) for k in range(100))
        clock.advance(0.1)
    assert admitted <= 100 + 200 * 5.0


def test_messages_without_timestamps_between_media_refill_nothing() -> None:
    clock = ManualClock()
    guard = InboundGuard(clock, rate=200.0, burst=100.0)
    assert twilio_pace(guard, clock, 0.0, 1.0) == 0
    clock.advance(5.0)
    marks = [guard.admit() for _ in range(150)]  # e.g. a flood of "mark" messages
    assert marks.count(True) == 99  # what the last media message left in the bucket


async def test_a_call_whose_messages_pile_up_during_a_stall_keeps_going(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start())
    for _ in range(100):  # 2 s at Twilio's pace
        await rig.call.feed_text(rig.twilio.media(tone_ulaw(20)))
        rig.clock.advance(FRAME_S)
    backlog = [rig.twilio.media(tone_ulaw(20)) for _ in range(150)]
    rig.clock.advance(3.0)  # the loop was busy for 3 s
    for message in backlog:
        await rig.call.feed_text(message)
    assert rig.errors == [] and rig.call.should_close is None
    assert rig.call.frames_in == 250


async def test_a_client_without_timestamps_is_judged_by_arrival(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start())
    for _ in range(200):
        await rig.call.feed_text(rig.twilio.media(tone_ulaw(20), timestamp=False))
        rig.clock.advance(FRAME_S)
    assert rig.errors == []
    await rig.feed(*(rig.twilio.media(tone_ulaw(20), timestamp=False) for _ in range(120)))
    assert rig.errors == ["flood"] * 20
