"""TwilioFrameSerializer: Twilio ⇄ frames for pipecat's transports, with marks and the ledger.

A pipecat WebSocket output hands the serializer each frame as it sends it; these tests play
the transport's part (calling ``serialize`` / ``deserialize`` in send order) and Twilio's (the
``TwilioScript`` messages, mark echoes), on a ManualClock.
"""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
)

from voiceagent.clock import ManualClock
from voiceagent.frames import AgentHeardFrame, CallEndedFrame, CallStartedFrame, PlaybackMarkFrame
from voiceagent.settings import TransportSettings
from voiceagent.transports.twilio.frame_serializer import TwilioFrameSerializer
from voiceagent.transports.twilio.marks import SegmentMarkFrame, SegmentPlanFrame, SyncMarkFrame

from .conftest import TwilioScript, tone_pcm, tone_ulaw

RATE = 16000  # the pipeline's input rate
LINE = 8000  # the transport's output at the line rate: no resampling, exact chunks


def agent_audio(ms: int, rate: int = LINE) -> OutputAudioRawFrame:
    return OutputAudioRawFrame(tone_pcm(ms, rate, freq=220), rate, 1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def line(clock: ManualClock) -> tuple[TwilioFrameSerializer, TwilioScript]:
    """A serializer whose call has started, and Twilio's side of the stream."""
    serializer = TwilioFrameSerializer(clock=clock, settings=TransportSettings(lead_ms=200))
    twilio = TwilioScript()
    assert await serializer.deserialize(twilio.connected()) is None
    started = await serializer.deserialize(twilio.start(From="+15550100"))
    assert isinstance(started, CallStartedFrame)
    assert started.call_sid == twilio.call_sid
    assert started.custom_parameters == {"From": "+15550100"}
    return serializer, twilio


async def settle() -> None:
    """Let woken tasks run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def send(serializer: TwilioFrameSerializer, *frames) -> list[dict]:
    """Serialize frames in order as the transport would; the Twilio messages that went out."""
    out = []
    for frame in frames:
        text = await serializer.serialize(frame)
        if text is not None:
            out.append(json.loads(text))
    return out


async def test_caller_audio_dtmf_and_stop_become_frames(line):
    serializer, twilio = line
    audio = await serializer.deserialize(twilio.media(tone_ulaw(20)))
    assert isinstance(audio, InputAudioRawFrame)
    assert audio.sample_rate == RATE and len(audio.audio) > 0
    digit = await serializer.deserialize(twilio.dtmf("7"))
    assert isinstance(digit, InputDTMFFrame) and digit.button.value == "7"
    ended = await serializer.deserialize(twilio.stop())
    assert isinstance(ended, CallEndedFrame) and ended.reason == "stop"
    assert await serializer.deserialize(twilio.media(tone_ulaw(20))) is None  # after stop


async def test_malformed_messages_are_dropped_and_counted(clock):
    counted: list[str] = []
    serializer = TwilioFrameSerializer(clock=clock, on_protocol_error=counted.append)
    twilio = TwilioScript()
    assert await serializer.deserialize("{not json") is None
    assert await serializer.deserialize(b"\x00\x01") is None
    assert await serializer.deserialize(twilio.media(tone_ulaw(20))) is None  # before start
    await serializer.deserialize(twilio.start())
    assert await serializer.deserialize(twilio.media(b"", stream_sid="MZother")) is None
    assert counted == ["non_json", "binary", "media_before_start", "wrong_stream_sid"]
    assert serializer.guard.counts["non_json"] == 1


async def test_a_wrong_media_format_ends_the_call(clock):
    serializer = TwilioFrameSerializer(clock=clock)
    twilio = TwilioScript()
    ended = await serializer.deserialize(
        twilio.start({"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1})
    )
    assert isinstance(ended, CallEndedFrame)
    assert "unsupported media format" in (serializer.should_close or "")


def speech(turn_id: int, segments: list[tuple[str, int]], *, in_context: bool = True):
    """What TwilioMarks makes of one TTS reply: the plan (urgent: it reaches the serializer
    first) and the frames the output sends in order (audio in 40 ms chunks, flushes, marks)."""
    plan: list = [SegmentPlanFrame(edge="turn_start", turn_id=turn_id)]
    wire: list = [SegmentMarkFrame(edge="turn_start", turn_id=turn_id)]
    for index, (text, ms) in enumerate([*segments, ("", 0)], start=1):
        mark = f"a{turn_id}.{index}"
        plan.append(
            SegmentPlanFrame(
                turn_id=turn_id, mark=mark, text=text, seconds=ms / 1000, in_context=in_context
            )
        )
        wire += [agent_audio(40) for _ in range(ms // 40)]
        wire += [SegmentMarkFrame(edge="flush"), SegmentMarkFrame(turn_id=turn_id, mark=mark)]
    plan.append(SegmentPlanFrame(edge="turn_end", turn_id=turn_id))
    return plan, wire


async def test_a_played_turn_is_reported_heard_in_full_from_its_last_echo(line):
    serializer, twilio = line
    plan, wire = speech(1, [("Hello there,", 80), ("how can I help?", 40)])
    assert await send(serializer, *plan) == []  # the plan itself sends nothing
    sent = await send(serializer, *wire)
    assert [m["event"] for m in sent] == ["media", "media", "mark", "media", "mark", "mark"]
    assert all(m["streamSid"] == twilio.stream_sid for m in sent)
    media = base64.b64decode(sent[0]["media"]["payload"])
    assert len(media) == 320  # 40 ms of 8 kHz μ-law
    marks = [m["mark"]["name"] for m in sent if m["event"] == "mark"]
    assert marks == ["a1.1", "a1.2", "a1.3"]
    first = await serializer.deserialize(twilio.mark("a1.1"))
    assert isinstance(first, PlaybackMarkFrame) and first.mark_name == "a1.1"
    await serializer.deserialize(twilio.mark("a1.2"))
    heard = await serializer.deserialize(twilio.mark("a1.3"))
    assert isinstance(heard, AgentHeardFrame)
    assert heard.text == heard.full_text == "Hello there, how can I help?"
    assert heard.interrupted is False and heard.in_context is True


async def test_a_barge_in_clears_twilio_and_reports_only_what_was_heard(line, clock):
    serializer, twilio = line
    plan, wire = speech(
        1,
        [("Sure, we open at nine.", 400), ("On Saturdays we open at ten.", 400)],
    )
    await send(serializer, *plan)  # the TTS made the whole reply at once
    sent = await send(serializer, *wire[:6])
    assert len(sent) == 5  # 0.2 s at once: Twilio now holds the lead
    # The output goes on sending; the serializer paces it to real time.
    pacing = asyncio.create_task(send(serializer, *wire[6:13]))  # the rest of clause 1, its mark
    await settle()
    assert not pacing.done()
    for _ in range(10):
        clock.advance(0.04)
        await settle()
    sent += await pacing
    assert sent[-1] == {"event": "mark", "streamSid": twilio.stream_sid, "mark": {"name": "a1.1"}}
    await serializer.deserialize(twilio.mark("a1.1"))  # clause 1 played
    sent += await send(serializer, *wire[13:18])  # 0.2 s of clause 2 goes out...
    clock.advance(0.1)  # ...and 0.1 s of it has played when the caller talks over it
    cleared = await send(serializer, InterruptionFrame())
    assert cleared == [{"event": "clear", "streamSid": twilio.stream_sid}]
    sync = await send(serializer, SyncMarkFrame())
    assert [m["event"] for m in sync] == ["mark"]
    heard = await serializer.deserialize(twilio.mark(sync[0]["mark"]["name"]))
    assert isinstance(heard, AgentHeardFrame)
    assert heard.interrupted is True
    assert heard.text == "Sure, we open at nine. On"  # a quarter of clause 2: its first word
    assert heard.full_text == "Sure, we open at nine. On Saturdays we open at ten."
    assert heard.unheard_text == "Saturdays we open at ten."
    assert serializer.clears_sent == 1


async def test_a_turn_cut_before_any_of_its_audio_was_sent_is_forgotten(line):
    """Only turns the caller could have heard are reported: each report needs a mark echo."""
    serializer, twilio = line
    plan, wire = speech(1, [("Sure.", 80)])
    later, _ = speech(2, [("Let me check that for you.", 400)])
    await send(serializer, *plan, *later, *wire[:3])  # turn 2 is still queued in the output
    assert await send(serializer, InterruptionFrame()) != []  # turn 1 was playing
    [sync] = await send(serializer, SyncMarkFrame())
    heard = await serializer.deserialize(twilio.mark(sync["mark"]["name"]))
    assert isinstance(heard, AgentHeardFrame) and heard.full_text == "Sure."
    assert not serializer.playback.reports  # nothing about turn 2
    assert await send(serializer, InterruptionFrame(), SyncMarkFrame()) == []


async def test_audio_waiting_for_its_turn_when_a_clear_comes_is_never_sent(line, clock):
    serializer, _ = line
    await send(serializer, *[agent_audio(40) for _ in range(5)])
    late = asyncio.create_task(serializer.serialize(agent_audio(40)))
    await settle()
    assert not late.done()  # paced: Twilio holds the lead already
    await serializer.serialize(InterruptionFrame())
    clock.advance(0.05)
    assert await late is None


async def test_speech_outside_the_conversation_is_reported_as_such(line):
    serializer, twilio = line
    plan, wire = speech(1, [("Are you still there?", 40)], in_context=False)
    sent = await send(serializer, *plan, *wire)
    for name in [m["mark"]["name"] for m in sent if m["event"] == "mark"]:
        heard = await serializer.deserialize(twilio.mark(name))
    assert isinstance(heard, AgentHeardFrame) and heard.in_context is False


async def test_wideband_agent_audio_is_resampled_and_flushed_at_each_segment_end(line):
    """The resampler releases audio in bursts; what it holds goes out before the mark."""
    serializer, _ = line
    plan = [SegmentPlanFrame(turn_id=1, mark="a1.1", text="Sure.", seconds=0.1)]
    sent = await send(
        serializer,
        *plan,
        *[agent_audio(20, rate=16000) for _ in range(5)],
        SegmentMarkFrame(edge="flush"),
        SegmentMarkFrame(turn_id=1, mark="a1.1"),
    )
    assert sent[-1]["event"] == "mark"
    media = [base64.b64decode(m["media"]["payload"]) for m in sent if m["event"] == "media"]
    assert abs(sum(map(len, media)) - 800) <= 16  # 0.1 s of 8 kHz μ-law, all before the mark


async def test_other_transport_messages_pass_as_json(line):
    serializer, _ = line
    message = {"event": "custom", "value": 1}
    assert await send(serializer, OutputTransportMessageFrame(message=message)) == [message]
