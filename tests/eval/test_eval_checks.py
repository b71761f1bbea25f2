"""Checks judged on recorded calls: what the caller observed plus the server's transcript.

Each test replays one recorded call (the emulator's report, the transcript on the stream
clock, the clears) through ``observe_call`` and ``evaluate``; no call is placed.
"""

import dataclasses
import io
from pathlib import Path

import pytest

from voiceagent.emulator.caller import CallReport, TurnReport
from voiceagent.eval.checks import NO_TRANSCRIPT, evaluate
from voiceagent.eval.observe import TranscriptEntry, observe_call
from voiceagent.eval.report import ScenarioResult, SuiteReport
from voiceagent.eval.scenario import parse_scenarios

SCENARIO = """
[[call]]
name = "receptionist"
greeting = { contains = ["Bright Smile"], interrupted = false }

[[call.line]]
say = "What time do you close on Fridays?"
expect = { contains_any = ["3", "three"], within_ms = 2000, max_wer = 0.2 }

[[call.line]]
say = "Do you have anything next Tuesday,"
continues = true
expect = { no_reply = true }

[[call.line]]
say = "in the afternoon?"
expect = { contains = ["2 pm"], not_contains = ["Saturday"], interrupted = false, max_wer = 0.1 }

[[call.line]]
say = "Uh-huh."
backchannel_after_s = 0.8
expect = { committed = false }

[[call.line]]
say = "How much is a cleaning?"
expect = { interrupted = true }

[[call.line]]
say = "Wait, where are you?"
barge_in_after_s = 1.5
expect = { contains = ["Main Street"], within_ms = 1500 }
"""

# (start, end, first agent audio, latency ms) of each line, stream seconds.
LINES = [
    (4.1, 6.0, 6.9, 900.0),
    (10.2, 12.0, None, None),
    (12.6, 13.8, 14.8, 1000.0),
    (15.6, 16.0, None, None),
    (19.2, 21.0, 22.3, 1300.0),
    (23.3, 24.5, 25.6, 1100.0),
]
GREETING = "Hello, thanks for calling Bright Smile Dental."
TRANSCRIPT = [
    TranscriptEntry("agent", GREETING, 3.6, full_text=GREETING),
    TranscriptEntry("caller", "What time do you close on Fridays?", 6.4),
    TranscriptEntry("agent", "Sure, we close at 3 pm on Fridays.", 9.0),
    TranscriptEntry("caller", "Do you have anything next Tuesday", 12.5),
    TranscriptEntry("caller", "in the afternoon?", 14.2),
    TranscriptEntry("agent", "Sure, we have 2 pm and 4 pm.", 18.0),
    TranscriptEntry("caller", "How much is a cleaning?", 21.4),
    TranscriptEntry(
        "agent",
        "Of course, a cleaning",
        23.95,
        interrupted=True,
        full_text="Of course, a cleaning costs 120 dollars without insurance.",
    ),
    TranscriptEntry("caller", "Wait, where are you?", 24.9),
    TranscriptEntry("agent", "We are at 42 Main Street.", 28.0),
]
CLEARS = [(23.9, 2.0)]


def scenario():
    (call,) = parse_scenarios(__import__("tomllib").loads(SCENARIO), Path("calls.toml"))
    return call


def report(lines=LINES) -> CallReport:
    turns = [
        TurnReport(
            index=i,
            caller_text="",
            caller_end_s=end,
            first_agent_audio_s=first,
            latency_ms=latency,
            agent_audio_s=0.0 if first is None else 2.0,
            caller_start_s=start,
        )
        for i, (start, end, first, latency) in enumerate(lines)
    ]
    return CallReport(
        heard_pcm8k=b"",
        turns=turns,
        marks_received=6,
        marks_echoed=6,
        clears=len(CLEARS),
        media_received=900,
        duration_s=31.0,
        closed_by_server=False,
        agent_utterances_s=[0.3] + [first for _, _, first, _ in lines if first is not None],
        call_sid="CAtest",
    )


def verdicts(results) -> dict[tuple[str, str], bool | None]:
    return {(r.where, r.check): r.passed for r in results}


def test_a_good_call_passes_every_check_with_its_evidence():
    call = scenario()
    seen = observe_call(call, report(), TRANSCRIPT, CLEARS)
    results = evaluate(call, seen)
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert verdicts(results) == {
        ("greeting", "contains 'Bright Smile'"): True,
        ("greeting", "not interrupted"): True,
        ("line 1", "contains any of '3', 'three'"): True,
        ("line 1", "within 2000 ms"): True,
        ("line 1", "understood with WER ≤ 0.20"): True,
        ("line 2", "no reply"): True,
        ("line 3", "contains '2 pm'"): True,
        ("line 3", "does not contain 'Saturday'"): True,
        ("line 3", "not interrupted"): True,
        ("line 3", "understood with WER ≤ 0.10"): True,
        ("line 4", "not taken as a turn"): True,
        ("line 5", "interrupted"): True,
        ("line 6", "contains 'Main Street'"): True,
        ("line 6", "within 1500 ms"): True,
    }
    evidence = {(r.where, r.check): r.evidence for r in results}
    assert evidence[("line 1", "within 2000 ms")] == "first agent audio 900 ms after end of speech"
    # The mid-sentence pause: one sentence over two lines and two commits (a regret).
    assert evidence[("line 3", "understood with WER ≤ 0.10")] == (
        "WER 0.00: said 'Do you have anything next Tuesday, in the afternoon?', "
        "committed 'Do you have anything next Tuesday in the afternoon?'"
    )
    assert evidence[("line 5", "interrupted")] == "cut off; heard 'Of course, a cleaning'"
    # The reply played on through the backchannel: it belongs to line 3, not to the uh-huh.
    assert seen.lines[2].reply.heard == ["Sure, we have 2 pm and 4 pm."]
    assert seen.lines[3].reply.heard == [] and seen.lines[3].understood == []


def test_a_bad_call_fails_the_checks_it_breaks_and_says_why():
    call = scenario()
    lines = list(LINES)
    lines[0] = (4.1, 6.0, 8.6, 2600.0)  # slow reply
    lines[1] = (10.2, 12.0, 12.7, 700.0)  # the agent spoke into the caller's pause
    transcript = [
        dataclasses.replace(TRANSCRIPT[0], interrupted=True, text="Hello, thanks"),
        dataclasses.replace(TRANSCRIPT[1], text="What time do you clothes on Friday?"),
        TranscriptEntry("agent", "We are open on Saturday.", 10.5),
        *TRANSCRIPT[3:6],
        TranscriptEntry("caller", "uh huh", 15.9),  # the backchannel was taken as a turn
        *TRANSCRIPT[6:9],
        # no reply heard to line 6
    ]
    results = evaluate(call, observe_call(call, report(lines), transcript, CLEARS))
    failed = {(r.where, r.check): r.evidence for r in results if r.passed is False}
    assert failed == {
        ("greeting", "contains 'Bright Smile'"): "heard 'Hello, thanks'",
        ("greeting", "not interrupted"): "cut off; heard 'Hello, thanks'",
        ("line 1", "contains any of '3', 'three'"): "heard 'We are open on Saturday.'",
        ("line 1", "within 2000 ms"): "first agent audio 2600 ms after end of speech",
        ("line 1", "understood with WER ≤ 0.20"): "WER 0.29: said 'What time do you close on "
        "Fridays?', committed 'What time do you clothes on Friday?'",
        ("line 2", "no reply"): "agent audio started 700 ms after the line ended",
        ("line 4", "not taken as a turn"): "committed 'uh huh'",
        ("line 6", "contains 'Main Street'"): "the caller heard no reply",
    }


def test_a_remote_server_without_transcript_judges_only_what_the_caller_observed():
    call = scenario()
    results = evaluate(call, observe_call(call, report(), None, CLEARS))
    by = {(r.where, r.check): r for r in results}
    assert by[("line 5", "interrupted")].passed is True
    assert by[("line 5", "interrupted")].evidence == "1 clear(s) dropped its audio"
    assert by[("line 3", "not interrupted")].passed is True
    assert by[("line 1", "within 2000 ms")].passed is True
    assert by[("line 2", "no reply")].passed is True
    assert by[("greeting", "not interrupted")].evidence == "no clear"
    for key in [
        ("line 1", "contains any of '3', 'three'"),
        ("line 3", "understood with WER ≤ 0.10"),
    ]:
        assert by[key].passed is None and by[key].evidence == NO_TRANSCRIPT
    assert not [r for r in results if r.passed is False]


def test_a_call_that_could_not_be_placed_fails_every_check():
    call = scenario()
    results = evaluate(call, observe_call(call, None, None, [], error="cannot connect"))
    assert results[0].check == "call completes" and results[0].evidence == "cannot connect"
    assert len(results) == 15 and all(r.passed is False for r in results)


def test_lines_never_spoken_fail_when_the_server_hangs_up_early():
    call = scenario()
    short = report(LINES[:2])
    short.closed_by_server = True
    results = evaluate(call, observe_call(call, short, TRANSCRIPT[:4], []))
    line6 = [r for r in results if r.where == "line 6"]
    assert line6 and all(r.passed is False for r in line6)
    assert line6[0].evidence == "never spoken: the call ended (by the server) after 2 line(s)"


def test_a_call_the_server_refused_says_so_with_its_close_code():
    call = scenario()
    refused = report([])
    refused.closed_by_server = True
    refused.close_code, refused.close_reason = 1013, "server at capacity, try again later"
    results = evaluate(call, observe_call(call, refused, None, []))
    line1 = [r for r in results if r.where == "line 1"]
    assert line1[0].evidence == (
        "never spoken: the call ended (by the server, close 1013 server at capacity, try again "
        "later) after 0 line(s)"
    )


def test_the_report_gives_latency_percentiles_wer_and_pass_rate():
    call = scenario()
    seen = observe_call(call, report(), TRANSCRIPT, CLEARS)
    suite = SuiteReport([ScenarioResult(call, seen, evaluate(call, seen))], "ws://test/media")
    data = suite.to_dict()
    overall = data["overall"]
    assert data["passed"] is True
    assert (overall["passed"], overall["failed"], overall["pass_rate"]) == (14, 0, 1.0)
    # Turn latencies: lines 1, 3, 5, 6 (not the pause, not the backchannel).
    assert overall["latency_ms"]["count"] == 4
    assert overall["latency_ms"]["p50_ms"] == pytest.approx(1050.0)
    assert overall["latency_ms"]["p90_ms"] == pytest.approx(1240.0)
    assert overall["stt_wer"] == {"rate": 0.0, "edits": 0, "reference_words": 25}
    assert data["scenarios"][0]["call"]["lines"][4]["reply"]["interrupted"] is True
    text = io.StringIO()
    suite.print_text(text)
    printed = text.getvalue()
    assert "PASS  line 5   interrupted: cut off; heard 'Of course, a cleaning'" in printed
    assert "14/14 checks passed (100.0 %)" in printed and "RESULT: PASS" in printed
    assert "latency p50 1050 ms, p90 1240 ms" in printed


def test_without_transcript_a_reply_never_heard_is_not_judged_uninterrupted():
    call = scenario()
    lines = list(LINES)
    lines[2] = (12.6, 13.8, None, None)  # no agent audio after "in the afternoon?"
    results = evaluate(call, observe_call(call, report(lines), None, []))
    (check,) = [r for r in results if (r.where, r.check) == ("line 3", "not interrupted")]
    assert check.passed is False and check.evidence == "the caller heard no reply"


def test_a_tool_the_agent_had_to_call_is_found_in_the_record_of_its_line():
    (call,) = parse_scenarios(
        {
            "call": [
                {
                    "name": "booking",
                    "line": [
                        {
                            "say": "Book me for Tuesday at 2.",
                            "expect": {"tools": "book_appointment"},
                        },
                        {"say": "What's open Friday?", "expect": {"tools": ["check_availability"]}},
                    ],
                }
            ]
        },
        Path("calls.toml"),
    )
    transcript = [
        TranscriptEntry("caller", "Book me for Tuesday at 2.", 6.4),
        TranscriptEntry("tool", "book_appointment", 6.9),
        TranscriptEntry("agent", "You are booked.", 9.0),
        TranscriptEntry("caller", "What's open Friday?", 12.5),
        TranscriptEntry("agent", "We have 10 am.", 14.0),
    ]
    lines = [(4.1, 6.0, 6.9, 900.0), (10.2, 12.0, 13.0, 1000.0)]
    seen = observe_call(call, report(lines), transcript, [])
    results = {(r.where, r.check): r for r in evaluate(call, seen)}
    booked = results[("line 1", "calls book_appointment")]
    assert (booked.passed, booked.evidence) == (True, "called book_appointment")
    missed = results[("line 2", "calls check_availability")]
    assert (missed.passed, missed.evidence) == (False, "called no tool")
