"""Whole calls over loopback: the emulator against a fake Media Streams server."""

import base64
import re
import socket

import pytest
from emulator_fakes import FakeAgentServer, tone_pcm8k, window_rms

from voiceagent.emulator.caller import CallerEmulator
from voiceagent.emulator.script import CallerLine


async def test_two_turn_call_has_twilio_shapes_pace_marks_dtmf_and_stop():
    async with FakeAgentServer(part_s=0.25, reply_parts=2, silence_to_reply_s=0.2) as server:
        emulator = CallerEmulator(server.url, custom_parameters={"From": "+15550100"})
        script = [
            CallerLine(pcm8k=tone_pcm8k(0.4, 300.0), pause_after_s=0.4, text="hello"),
            CallerLine(pcm8k=b"", pause_after_s=0.4, text="[4#]", dtmf="4#"),
        ]
        report = await emulator.run(script, lead_in_s=0.2, tail_s=0.3, max_wait_reply_s=3.0)

    msgs = [r.msg for r in server.received]
    assert msgs[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = msgs[1]
    sid = start["streamSid"]
    assert re.fullmatch(r"MZ[0-9a-f]{32}", sid)
    assert start["sequenceNumber"] == "1" and start["event"] == "start"
    assert re.fullmatch(r"AC[0-9a-f]{32}", start["start"]["accountSid"])
    assert re.fullmatch(r"CA[0-9a-f]{32}", start["start"]["callSid"])
    assert start["start"]["streamSid"] == sid and start["start"]["tracks"] == ["inbound"]
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    assert start["start"]["customParameters"] == {"From": "+15550100"}
    assert [m["sequenceNumber"] for m in msgs[1:]] == [str(n) for n in range(1, len(msgs))]
    assert all(m["streamSid"] == sid for m in msgs[1:])

    media = server.messages("media")
    for n, rec in enumerate(media):
        body = rec.msg["media"]
        assert body["track"] == "inbound" and body["chunk"] == str(n + 1)
        assert body["timestamp"] == str(n * 20)
        assert len(body["payload"]) == 216 and len(base64.b64decode(body["payload"])) == 160
    first = media[0].at
    lags = [rec.at - first - n * 0.02 for n, rec in enumerate(media)]
    assert min(lags) > -0.05 and max(lags) < 0.15, "media must keep real-time pace without drift"
    assert abs(lags[-1]) < 0.1

    dtmf = server.messages("dtmf")
    assert [d.msg["dtmf"] for d in dtmf] == [
        {"track": "inbound_track", "digit": "4"},
        {"track": "inbound_track", "digit": "#"},
    ]
    stop = msgs[-1]
    assert stop["event"] == "stop"
    assert stop["stop"] == {
        "accountSid": start["start"]["accountSid"],
        "callSid": start["start"]["callSid"],
    }

    # every mark echoed once, in order, after the audio before it had played
    sent_marks = [(at, m["mark"]["name"]) for at, m in server.sent if m["event"] == "mark"]
    echoes = {r.msg["mark"]["name"]: r.at for r in server.messages("mark")}
    assert [name for _, name in sent_marks] == list(echoes)
    for at, name in sent_marks:
        part = int(name.split("-p")[1])
        assert 0.25 * (part + 1) - 0.05 < echoes[name] - at < 0.25 * (part + 1) + 0.2

    assert report.marks_received == report.marks_echoed == 4
    assert report.clears == 0 and report.media_received == 4 and not report.closed_by_server
    assert report.dtmf_sent == 2 and report.malformed_messages == 0
    assert [t.caller_text for t in report.turns] == ["hello", "[4#]"]
    spoken, keypad = report.turns
    assert spoken.caller_end_s == pytest.approx(0.6, abs=0.03)
    assert 150 < spoken.latency_ms < 1000  # the fake waits 200 ms of silence
    assert 0 <= keypad.latency_ms < 600  # the fake answers '#' at once
    assert spoken.agent_audio_s == pytest.approx(0.5, abs=0.03)
    heard = report.heard_pcm8k
    assert len(heard) == pytest.approx(2 * 8000 * report.duration_s, abs=400)
    reply = spoken.first_agent_audio_s
    assert window_rms(heard, 0.0, reply - 0.02) == 0.0
    assert window_rms(heard, reply + 0.02, reply + 0.48) > 4000
    assert window_rms(heard, reply + 0.52, keypad.first_agent_audio_s - 0.02) == 0.0


async def test_caller_barges_in_and_clear_flushes_audio_and_echoes_marks_at_once():
    async with FakeAgentServer(part_s=0.25, reply_parts=8, clear_on_barge_in=True) as server:
        events = []
        script = [
            CallerLine(pcm8k=tone_pcm8k(0.4, 300.0), pause_after_s=0.3, text="question"),
            CallerLine(
                pcm8k=tone_pcm8k(0.5, 300.0),
                pause_after_s=0.3,
                text="wait, no",
                start_after_agent_audio_s=0.6,
            ),
        ]
        report = await CallerEmulator(server.url).run(
            script,
            lead_in_s=0.2,
            tail_s=0.2,
            max_wait_reply_s=3.0,
            on_event=lambda kind, data: events.append((kind, data)),
        )

    first, barge = report.turns
    assert barge.caller_start_s == pytest.approx(first.first_agent_audio_s + 0.6, abs=0.05)
    clears = [at for at, m in server.sent if m["event"] == "clear"]
    assert len(clears) == 1 and report.clears == 1
    echoes = [(r.at, r.msg["mark"]["name"]) for r in server.messages("mark")]
    first_reply = [(at, name) for at, name in echoes if name.startswith("t0-")]
    assert [name for _, name in first_reply] == [f"t0-p{p}" for p in range(8)]
    played = [name for at, name in first_reply if at < clears[0]]
    flushed = [at for at, name in first_reply if at >= clears[0]]
    assert played == ["t0-p0", "t0-p1"]  # 0.5 s played before the caller cut in at 0.6 s
    assert len(flushed) == 6 and max(flushed) - clears[0] < 0.1  # all at once on clear
    assert report.marks_received == report.marks_echoed == 16  # 8 per reply

    clear_t = next(data["t"] for kind, data in events if kind == "clear")
    heard = report.heard_pcm8k
    assert window_rms(heard, first.first_agent_audio_s + 0.02, clear_t - 0.02) > 4000
    assert window_rms(heard, clear_t + 0.02, barge.first_agent_audio_s - 0.02) == 0.0
    assert first.agent_audio_s == pytest.approx(clear_t - first.first_agent_audio_s, abs=0.03)
    assert 150 < barge.latency_ms < 1000
    assert barge.agent_audio_s == pytest.approx(2.0, abs=0.05)
    kinds = [kind for kind, _ in events]
    assert kinds.count("caller_line") == 2 and kinds[-1] == "hangup"


async def test_misbehaving_server_is_counted_not_fatal_and_its_hang_up_ends_the_call():
    async with FakeAgentServer() as server:
        server.close_after_s = 0.6
        server.junk_on_start = [
            "this is not json",
            b"\x00\x01binary",
            [1, 2, 3],
            {"event": "bogus", "streamSid": "SID"},
            {"event": "media", "streamSid": "MZwrong", "media": {"payload": "//8="}},
            {"event": "media", "streamSid": "SID", "media": {"payload": "@@not base64@@"}},
            {"event": "mark", "streamSid": "SID", "mark": {}},
        ]
        emulator = CallerEmulator(server.url, stream_sid="MZ" + "0" * 32)
        server.junk_on_start = [
            {**j, "streamSid": emulator.stream_sid}
            if isinstance(j, dict) and j.get("streamSid") == "SID"
            else j
            for j in server.junk_on_start
        ]
        good = base64.b64encode(b"\x10" * 800).decode()
        server.junk_on_start += [
            {"event": "media", "streamSid": emulator.stream_sid, "media": {"payload": good}},
            {"event": "mark", "streamSid": emulator.stream_sid, "mark": {"name": "ok"}},
        ]
        report = await emulator.run(
            [CallerLine(pcm8k=tone_pcm8k(3.0), text="a long story")], lead_in_s=0.1, tail_s=0.1
        )
    assert report.closed_by_server
    assert report.duration_s == pytest.approx(0.6, abs=0.3)
    assert report.malformed_messages == 7
    assert report.media_received == 1 and report.marks_echoed == 1
    assert report.turns == []  # the caller never finished the line
    assert not server.messages("stop")  # nobody to say stop to


async def test_unreachable_server_raises_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RuntimeError, match="cannot connect"):
        await CallerEmulator(f"ws://127.0.0.1:{port}/media").run([])
