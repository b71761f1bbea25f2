"""Turn-taking rates read from one call's timeline and its script."""

from __future__ import annotations

from pathlib import Path

from voiceagent.eval.observe import CallObservation, LineObservation
from voiceagent.eval.rates import call_rates
from voiceagent.eval.report import ScenarioResult
from voiceagent.eval.scenario import parse_scenarios
from voiceagent.storage.store import CallEvent
from voiceagent.timeline.model import CallTimeline

SCRIPT = {
    "call": [
        {
            "name": "busy",
            "line": [
                {"say": "What are your hours?"},
                {"say": "I'd like to book,", "continues": True, "pause_after_s": 0.8},
                {"say": "on Tuesday."},
                {"say": "Wait, how much?", "barge_in_after_s": 0.8},
                {"say": "Uh-huh.", "backchannel_after_s": 1.0},
            ],
        }
    ]
}
SAID = [(1.0, 2.5), (5.0, 6.0), (6.8, 7.6), (9.0, 10.0), (13.5, 13.9)]


def agent(turn: int, start: float, end: float, text: str, cut: bool = False) -> CallEvent:
    return CallEvent(
        "agent",
        end,
        turn_id=turn,
        text=text,
        full_text=text,
        interrupted=cut,
        data={"started_s": start},
    )


def busy_call() -> ScenarioResult:
    (scenario,) = parse_scenarios(SCRIPT, Path("busy.toml"))
    events = [
        CallEvent("caller_line", a, text=line.say, data={"end_s": b, "index": line.index})
        for (a, b), line in zip(SAID, scenario.lines, strict=True)
    ]
    replies = [(2, 2.9, 4.8, "We are open 8 to 5."), (3, 6.3, 6.6, "Sure", True)]
    replies += [(4, 8.2, 9.3, "Tuesday at 2", True), (5, 10.6, 12.0, "It is 120 dollars.")]
    replies += [(6, 12.5, 16.0, "Anything else I can help you with today?")]
    for turn, start, end, text, *cut in replies:
        events.append(agent(turn, start, end, text, bool(cut)))
        events.append(CallEvent("caller_heard", start + 0.01, data={"end_s": end}))
    events += [
        CallEvent("caller", 2.8, turn_id=1, text="What are your hours?"),
        CallEvent("caller", 6.2, turn_id=3, text="I'd like to book"),
        CallEvent("metrics", 7.4, turn_id=3, data={"regret": True}),
        CallEvent("caller", 7.9, turn_id=5, text="on Tuesday"),
        CallEvent("decision", 9.3, data={"kind": "barge_in", "reason": "words"}),
        CallEvent("decision", 13.8, data={"kind": "barge_in", "reason": "duration"}),
    ]
    timeline = CallTimeline("CA1")
    timeline.add(events)
    observation = CallObservation(
        "busy",
        "CA1",
        transcript=True,
        lines=[
            LineObservation(n, ln.say, ln.kind.value, spoken=True)
            for n, ln in enumerate(scenario.lines)
        ],
    )
    return ScenarioResult(scenario, observation, [], timeline=timeline)


def test_each_rate_counts_what_went_wrong_out_of_its_chances():
    rates = call_rates(busy_call())
    shown = {key: (rate.count, rate.of) for key, rate in rates.items()}
    assert shown == {
        "regret": (1, 3),  # the commit on "I'd like to book," while the caller went on
        "double_answer": (1, 3),  # "how much?" got the price and then another reply
        "false_barge_in": (1, 5),  # the agent stopped for "Uh-huh."
        "missed_barge_in": (0, 1),  # "Wait, how much?" stopped it
        "premature_reply": (1, 3),  # "Sure" started in the pause after "I'd like to book,"
    }
    assert rates["regret"].text() == "1/3 (33.3 %)"


def test_without_the_servers_record_only_what_the_caller_observed_is_counted():
    result = busy_call()
    caller_only = CallTimeline("CA1")
    caller_only.add(e for e in result.timeline.events if e.kind.startswith("caller_"))
    result.timeline = caller_only
    rates = call_rates(result)
    assert (rates["regret"].of, rates["double_answer"].of) == (0, 0)  # unknown: not counted
    assert (rates["premature_reply"].count, rates["premature_reply"].of) == (1, 3)
    assert rates["false_barge_in"].of == 5  # the agent audio the caller heard
