"""The pacing tick: every call's sender wakes on one shared 20 ms grid, never early."""

from __future__ import annotations

import asyncio

from voiceagent.clock import ManualClock
from voiceagent.transports.twilio.pacing import PacingTick, shared_tick


async def woken_at(clock: ManualClock, tick: PacingTick, when: float, log: list) -> None:
    await tick.until(when)
    log.append((when, round(clock.now(), 6)))


async def test_senders_of_many_calls_wake_together_on_the_grid_never_early() -> None:
    clock = ManualClock(start=1000.0)
    tick = PacingTick(clock, period_s=0.02)
    log: list[tuple[float, float]] = []
    waits = [1000.003, 1000.017, 1000.020, 1000.021, 1000.055]
    tasks = [asyncio.create_task(woken_at(clock, tick, when, log)) for when in waits]
    await asyncio.sleep(0)
    assert tick.waiting == 5
    for _ in range(4):
        clock.advance(0.02)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert sorted(log) == [
        (1000.003, 1000.02),  # three senders, one wake-up
        (1000.017, 1000.02),
        (1000.020, 1000.02),
        (1000.021, 1000.04),
        (1000.055, 1000.06),
    ]
    assert all(woke >= when - 1e-9 for when, woke in log)


async def test_a_call_that_ends_while_waiting_leaves_nothing_behind() -> None:
    clock = ManualClock()
    tick = PacingTick(clock)
    waiter = asyncio.create_task(tick.until(clock.now() + 0.5))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    clock.advance(1.0)
    assert tick.waiting == 0


async def test_one_tick_per_clock_in_a_loop() -> None:
    clock, other = ManualClock(), ManualClock()
    assert shared_tick(clock) is shared_tick(clock)
    assert shared_tick(other) is not shared_tick(clock)
