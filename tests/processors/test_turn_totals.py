"""Turn-taking counters summed over calls for /metrics."""

from voiceagent.processors.turn_totals import TurnTotals
from voiceagent.turns.processor import TurnProcessor


def _call_with_commits(n: int) -> TurnProcessor:
    turns = TurnProcessor()
    turns.stats.commits = n
    return turns


def test_a_live_call_counts_then_folds_into_the_totals_when_it_ends():
    totals = TurnTotals()
    turns = _call_with_commits(1)
    totals.track(turns)
    assert totals.snapshot()["commits"] == 1  # live call, summed at scrape time
    assert totals.finished["commits"] == 0
    turns._stop()  # the call ends: its stats are folded in exactly once
    turns._stop()
    assert totals.finished["commits"] == 1 and totals.calls == 1
    assert totals.snapshot()["commits"] == 1


def test_two_calls_add_up_in_prometheus_text():
    totals = TurnTotals()
    for _ in range(2):
        totals.track(_call_with_commits(1))
    text = totals.render()
    assert "# TYPE voiceagent_turn_commits_total counter" in text
    assert "voiceagent_turn_commits_total 2" in text.splitlines()
    assert "voiceagent_turn_regrets_total 0" in text.splitlines()


def test_other_stages_counters_join_the_call_totals():
    totals = TurnTotals()
    turns = _call_with_commits(0)
    stage = {"fallback_switches": 1}  # e.g. Deepgram out of credit
    totals.track(turns, lambda: dict(stage))
    assert totals.snapshot()["fallback_switches"] == 1
    stage["fallback_switches"] = 2  # read at the end of the call
    turns._stop()
    stage["fallback_switches"] = 9  # after the end nothing is read again
    assert totals.finished["fallback_switches"] == 2
    assert "voiceagent_turn_fallback_switches_total 2" in totals.render().splitlines()
