"""A call's timeline: on the stream clock, its spans, its latency per turn split by stage."""

from __future__ import annotations

import pytest

from voiceagent.storage.store import CallDetail, CallEvent, CallSummary
from voiceagent.timeline.latency import turn_latencies
from voiceagent.timeline.model import CallTimeline

ORIGIN = 0.25  # the stream's t = 0 was 0.25 s after the server's call clock started


def stored(*events: CallEvent) -> CallDetail:
    summary = CallSummary(
        7, "CA1", "MZ1", "", "", 1000.0, 1012.0, "stop", None, None, 1, 1, 0, 0, 0
    )
    return CallDetail(summary, [CallEvent("stream", 11.9, data={"origin_s": ORIGIN}), *events])


def on_server(at: float, kind: str, **fields) -> CallEvent:
    """An event as the server stores it: ``at`` on the stream clock, stored on the call's."""
    data = dict(fields.pop("data", {}))
    for key in ("started_s", "play_at_s", "end_s"):
        if key in data:
            data[key] += ORIGIN
    return CallEvent(kind, at + ORIGIN, data=data, **fields)


def question_and_answer() -> CallTimeline:
    """The caller asks until 2.0 s; the agent answers, heard at 2.95 s."""
    timeline = CallTimeline.from_detail(
        stored(
            on_server(0.8, "speech_start"),
            on_server(2.05, "speech_end"),
            on_server(1.5, "partial", text="what time"),
            on_server(2.1, "final", text="What time do you close?"),
            on_server(2.3, "caller", turn_id=3, text="What time do you close?"),
            on_server(2.55, "llm_first_token", text="We"),
            on_server(2.7, "chunk", text="We close at 5 pm."),
            on_server(2.85, "tts_audio"),
            on_server(2.9, "agent_audio", turn_id=2, data={"play_at_s": 2.91}),
            on_server(
                4.4,
                "agent",
                turn_id=2,
                text="We close at 5 pm.",
                full_text="We close at 5 pm.",
                interrupted=False,
                data={"started_s": 2.91},
            ),
        )
    )
    return timeline


def test_the_servers_events_are_moved_onto_the_callers_stream_clock():
    timeline = question_and_answer()
    assert timeline.origin_s == ORIGIN
    assert [e.kind for e in timeline.events][:3] == ["speech_start", "partial", "speech_end"]
    assert timeline.events[0].at_s == pytest.approx(0.8)
    (speech,) = timeline.speech_spans()
    assert (speech.start_s, speech.end_s) == pytest.approx((0.8, 2.05))
    (agent,) = timeline.agent_spans()
    assert (agent.start_s, agent.end_s) == pytest.approx((2.91, 4.4))
    assert agent.text == "We close at 5 pm." and not agent.interrupted
    assert all(e.kind != "stream" for e in timeline.events)


def test_without_the_callers_side_the_latency_counts_from_the_vads_end_of_speech():
    (turn,) = turn_latencies(question_and_answer())
    assert turn.end_of_speech_by == "vad" and turn.end_of_speech_s == pytest.approx(2.05)
    stages = turn.stages_ms()
    assert stages["commit_wait"] == pytest.approx(250)
    assert stages["llm_first_token"] == pytest.approx(250)
    assert stages["first_chunk"] == pytest.approx(150)
    assert stages["tts_first_audio"] == pytest.approx(150)
    assert stages["to_line"] == pytest.approx(60)
    assert stages["network"] is None  # only the caller knows when it heard the agent
    assert turn.total_ms == pytest.approx(860)


def test_the_callers_side_gives_the_true_end_of_speech_and_the_network_stage():
    timeline = question_and_answer()
    timeline.add(
        [
            CallEvent(
                "caller_line", 0.78, text="What time do you close?", data={"end_s": 2.0, "index": 0}
            ),
            CallEvent("caller_heard", 2.95, data={"end_s": 4.45}),
        ]
    )
    (turn,) = turn_latencies(timeline)
    assert turn.end_of_speech_by == "caller"
    assert turn.stages_ms()["commit_wait"] == pytest.approx(300)
    assert turn.stages_ms()["network"] == pytest.approx(40)
    assert turn.total_ms == pytest.approx(950)  # the stages add up to the caller's wait
    assert sum(turn.stages_ms().values()) == pytest.approx(turn.total_ms)
    assert "commit wait 300 + LLM first token 250" in turn.split_text()


def test_a_fixed_reply_has_no_llm_stage_and_the_next_stage_counts_from_the_commit():
    timeline = CallTimeline.from_detail(
        stored(
            on_server(1.0, "speech_end"),
            on_server(1.4, "caller", turn_id=1, text="4 2"),
            on_server(1.5, "chunk", text="Thanks.", data={"fixed": True}),
            on_server(1.6, "tts_audio"),
            on_server(1.62, "agent_audio", turn_id=1, data={"play_at_s": 1.62}),
        )
    )
    (turn,) = turn_latencies(timeline)
    stages = turn.stages_ms()
    assert stages["llm_first_token"] is None
    assert stages["first_chunk"] == pytest.approx(100)
    assert turn.total_ms == pytest.approx(620)


def test_a_turn_whose_reply_never_played_has_no_total():
    timeline = CallTimeline.from_detail(
        stored(on_server(1.0, "speech_end"), on_server(1.3, "caller", turn_id=1, text="hi"))
    )
    (turn,) = turn_latencies(timeline)
    assert turn.total_ms is None and turn.split_text() == "commit wait 300 ms"


def test_a_timeline_survives_json():
    timeline = question_and_answer()
    timeline.add([CallEvent("caller_heard", 2.95, data={"end_s": 4.45})])
    data = timeline.to_dict()
    again = CallTimeline.from_dict(data)
    assert again.events == timeline.events
    assert data["latencies"][0]["stages_ms"]["network"] == pytest.approx(40)
    assert again.stored_events([CallEvent("caller_clear", 3.0)])[0].at_s == pytest.approx(3.25)
