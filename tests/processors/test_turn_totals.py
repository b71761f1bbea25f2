"""Turn-taking counters summed over calls for /metrics."""

from pipecat.frames.frames import EndFrame

from voiceagent.processors.stability_router import RouterParams
from voiceagent.processors.turn_totals import TurnTotals

BOOKING = ("I need to book", *["I need to book a cleaning."] * 3)


async def _one_booking(call) -> None:
    await call.starts_talking()
    await call.says(*BOOKING)
    await call.wait(0.2)
    await call.stops_talking()
    await call.wait(0.5)


async def test_live_call_counts_then_folds_into_totals_when_it_ends(call_factory):
    totals = TurnTotals()
    call = await call_factory(RouterParams(speculate=False))
    totals.track(call.router)
    await _one_booking(call)
    assert call.router.stats.commits == 1
    assert totals.snapshot()["commits"] == 1  # live call, summed at scrape time
    assert totals.finished["commits"] == 0

    await call.send(EndFrame())  # the call ends: its stats are folded in exactly once
    assert totals.finished["commits"] == 1 and totals.calls == 1
    assert totals.snapshot()["commits"] == 1


async def test_two_calls_add_up_in_prometheus_text(call_factory):
    totals = TurnTotals()
    for _ in range(2):
        call = await call_factory(RouterParams(speculate=False))
        totals.track(call.router)
        await _one_booking(call)
    text = totals.render()
    assert "# TYPE voiceagent_turn_commits_total counter" in text
    assert "voiceagent_turn_commits_total 2" in text.splitlines()
    assert "voiceagent_turn_regrets_total 0" in text.splitlines()


async def test_other_stages_counters_join_the_call_totals(call_factory):
    totals = TurnTotals()
    call = await call_factory(RouterParams(speculate=False))
    stage = {"fallback_switches": 1, "floor_holds": 2}  # e.g. Deepgram out of credit, 2 holds
    totals.track(call.router, lambda: dict(stage))
    assert totals.snapshot()["floor_holds"] == 2
    stage["floor_holds"] = 3  # one more hold before the call ends: read at the end
    await call.send(EndFrame())
    stage["floor_holds"] = 9  # after the end nothing is read again
    assert totals.snapshot()["floor_holds"] == 3
    assert totals.finished["fallback_switches"] == 1 and totals.finished["floor_holds"] == 3
    lines = totals.render().splitlines()
    assert "voiceagent_turn_fallback_switches_total 1" in lines
    assert "voiceagent_turn_floor_holds_total 3" in lines
