"""The injectable clock: manual time, timers, and the re-armable deadline."""

from voiceagent.clock import Deadline, ManualClock


def test_manual_clock_fires_timers_in_order_only_when_advanced():
    clock = ManualClock(start=0.0)
    fired: list[tuple[str, float]] = []
    clock.call_later(0.5, lambda: fired.append(("b", clock.now())))
    clock.call_later(0.2, lambda: fired.append(("a", clock.now())))
    clock.advance(0.1)
    assert fired == []
    clock.advance(1.0)
    assert fired == [("a", 0.2), ("b", 0.5)] and clock.now() == 1.1


def test_deadline_rearms_only_when_the_time_changes_and_cancels():
    clock = ManualClock(start=0.0)
    fired: list[float] = []
    deadline = Deadline(clock, lambda: fired.append(clock.now()))
    deadline.set(1.0)
    deadline.set(1.0)  # same time: the one timer stays
    clock.advance(0.5)
    deadline.set(0.8)  # moved earlier
    clock.advance(1.0)
    assert fired == [0.8] and deadline.at is None
    deadline.set(2.0)
    deadline.cancel()
    clock.advance(5.0)
    assert fired == [0.8]


def test_deadline_early_fires_a_hair_before():
    clock = ManualClock(start=0.0)
    fired: list[float] = []
    Deadline(clock, lambda: fired.append(clock.now()), early_s=0.001).set(1.0)
    clock.advance(0.9995)
    assert fired == [0.999]
