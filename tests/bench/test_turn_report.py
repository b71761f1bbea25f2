"""The bench's caller-side report: replies told apart by their marks, lines answered twice."""

from __future__ import annotations

from bench.fakes.breakdown import CallRecord, line_rows, probe_counts, reply_starts
from bench.fakes.caller_lines import BenchLine
from bench.fakes.probe import ProbeEvent


def heard(*events: tuple[str, dict]) -> list[tuple[float, str, dict]]:
    """Caller events as the emulator reports them (monotonic time = stream time here)."""
    return [(data.get("t", 0.0), kind, data) for kind, data in events]


def audio(t: float) -> tuple[str, dict]:
    return "agent_audio_start", {"t": t}


def mark(name: str, t: float, cleared: bool = False) -> tuple[str, dict]:
    return "mark", {"name": name, "t": t, "received_t": t - 0.3, "cleared": cleared}


def clear(t: float, *names: str) -> tuple[str, dict]:
    return "clear", {"t": t, "marks": list(names)}


def test_one_reply_in_several_segments_is_one_reply():
    events = heard(audio(1.0), mark("a1.1", 1.5), mark("a1.2", 2.0), mark("a1.3", 2.6))
    assert reply_starts(events) == [1.0]


def test_a_second_reply_right_after_the_first_is_told_apart_by_its_marks():
    events = heard(audio(1.0), mark("a1.1", 1.5), mark("a1.2", 2.0), mark("a2.1", 2.8))
    assert reply_starts(events) == [1.0, 2.0]


def test_a_reply_queued_behind_a_cleared_one_was_never_heard():
    events = heard(
        audio(1.0),
        mark("a1.1", 1.5),
        clear(1.9, "a1.2", "a2.1"),
        mark("a1.2", 1.9, cleared=True),  # the segment playing at the clear
        mark("a2.1", 1.9, cleared=True),  # queued: never played
        audio(3.0),
        mark("a3.1", 3.4),
    )
    assert reply_starts(events) == [1.0, 3.0]


def test_audio_without_marks_is_one_reply_per_utterance():
    events = heard(audio(1.0), ("agent_audio_end", {"t": 2.0}), audio(4.0))
    assert reply_starts(events) == [1.0, 4.0]


def test_audio_going_on_after_a_soft_clear_is_the_same_reply():
    # "Uh-huh" 0.3 s into the reply, before its first mark went out: the agent stopped at the
    # sound (a soft clear) and went on 0.8 s later, its mark sent again under a new name.
    events = heard(
        audio(1.0),
        clear(1.3),
        ("agent_audio_end", {"t": 1.3}),
        audio(2.1),
        mark("a1.1r1", 2.6),
        mark("a1.2", 3.2),
    )
    assert reply_starts(events, ["pause_clear"]) == [1.0]
    assert reply_starts(events) == [1.0, 2.1]  # without the call record: two replies


def test_a_soft_clear_then_a_barge_in_then_the_answer():
    events = heard(
        audio(1.0),
        mark("a1.1", 1.5),
        clear(2.0, "a1.2"),  # the caller's first sound
        mark("a1.2", 2.0, cleared=True),
        clear(2.5),  # the barge-in: the reply is cut off
        audio(3.4),
        mark("a2.1", 3.9),
    )
    assert reply_starts(events, ["pause_clear", "clear"]) == [1.0, 3.4]


def call(lines: list[BenchLine], *events: tuple[str, dict]) -> CallRecord:
    return CallRecord(name="call", lines=lines, events=heard(*events))


def said(i: int, start: float, end: float) -> list[tuple[str, dict]]:
    return [("caller_line", {"index": i, "t": start}), ("caller_line_end", {"index": i, "t": end})]


def test_a_turn_answered_twice_is_flagged_with_both_replies():
    lines = [BenchLine("I'd like to book an appointment for next Tuesday."), BenchLine("Bye.")]
    rec = call(
        lines,
        *said(0, 1.0, 4.0),
        audio(4.6),
        mark("a1.1", 5.0),
        mark("a2.1", 6.5),  # the late final became a second turn: a second reply
        *said(1, 9.0, 9.5),
        audio(10.2),
        mark("a3.1", 10.6),
    )
    first, second = line_rows(rec)
    assert first.replies == [4.6, 5.0] and first.answered_twice
    assert round(first.latency_ms) == 600
    assert second.replies == [10.2] and not second.answered_twice


def test_a_reply_in_a_mid_sentence_pause_is_talking_over_the_caller():
    lines = [
        BenchLine("Um, my number is", "pause"),
        BenchLine("five five five, one two three four."),
    ]
    rec = call(lines, *said(0, 1.0, 2.0), audio(2.5), mark("a1.1", 2.9), *said(1, 2.8, 5.0))
    pause, rest = line_rows(rec)
    assert pause.over_caller == [2.5]
    assert rest.over_caller == []


def test_dtmf_latency_counts_from_the_last_key():
    lines = [BenchLine("[presses 42#]", "dtmf", voice="", dtmf="42#")]
    rec = call(
        lines,
        ("caller_line", {"index": 0, "t": 1.0}),
        ("dtmf", {"index": 0, "digit": "4", "t": 1.0}),
        ("dtmf", {"index": 0, "digit": "2", "t": 1.25}),
        ("dtmf", {"index": 0, "digit": "#", "t": 1.5}),
        ("caller_line_end", {"index": 0, "t": 1.5}),
        audio(2.3),
    )
    (row,) = line_rows(rec)
    assert round(row.latency_ms) == 800


def test_commits_are_counted_once_however_many_probes_saw_them():
    rec = CallRecord(name="call", lines=[])
    for stage in ("router", "llm", "tts"):
        rec.probes += [ProbeEvent(1.0, stage, "commit", (1, False, "hi"))]
        rec.probes += [ProbeEvent(2.0, stage, "turn_metrics", {"regret": True})]
    assert probe_counts(rec, "commit") == 1
    assert probe_counts(rec, "turn_metrics", lambda d: d["regret"]) == 1


def test_stt_final_latency_is_to_the_final_closing_the_audio_up_to_the_end_of_speech():
    from bench.fakes.breakdown import Timeline, stt_final_at
    from bench.fakes.deepgram_live import ConnectionRecord, SentMessage
    from bench.fakes.deepgram_live.protocol import ListenOptions

    rec = call([BenchLine("Hi, I'd like to book a cleaning.")], *said(0, 1.0, 4.0), audio(5.0))
    conn = ConnectionRecord("r", {}, ListenOptions(), 0.0, first_audio_at=0.2)

    def final(start: float, duration: float, at: float) -> SentMessage:
        body = {"type": "Results", "is_final": True, "start": start, "duration": duration}
        return SentMessage(at - 0.2, at, body)

    conn.sent = [final(0.0, 2.5, 3.0), final(2.5, 1.0, 4.1), final(3.5, 0.6, 4.6)]
    rec.stt_connections = [conn]
    # the caller stopped at 4.0 on the stream clock = 3.8 s into the STT's audio
    assert stt_final_at(rec, Timeline(rec), 4.0) == 4.6


def test_a_backchannel_soft_clear_is_not_an_interruption_and_barge_ins_report_both_clears():
    lines = [
        BenchLine("Uh-huh.", "backchannel"),
        BenchLine("Wait, can you make it Wednesday instead?", "barge"),
    ]
    rec = call(
        lines,
        audio(0.5),
        *said(0, 1.0, 1.4),
        clear(1.05),  # soft: the agent stops at the caller's first sound, goes on
        ("agent_audio_end", {"t": 1.05}),
        audio(1.9),
        mark("a1.1r1", 2.4),
        *said(1, 3.0, 5.0),
        clear(3.05),  # soft, at the first sound
        ("agent_audio_end", {"t": 3.05}),
        clear(4.0),  # the barge-in, once the word came
    )
    rec.server_clears = ["pause_clear", "pause_clear", "clear"]
    backchannel, barge = line_rows(rec)
    assert (backchannel.interruptions, backchannel.pause_clears) == (0, 1)
    assert backchannel.replies == []
    assert round(barge.clear_ms) == 50 and round(barge.barge_clear_ms) == 1000
    assert round(barge.silent_ms) == 50

    rec.server_clears = None  # no call record: every clear counts as a barge-in
    backchannel, barge = line_rows(rec)
    assert (backchannel.interruptions, backchannel.pause_clears) == (1, 0)
    assert round(barge.barge_clear_ms) == 50
