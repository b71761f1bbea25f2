"""Twilio → pipeline: a caller's stream becomes frames; bad input is dropped and counted."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import EndFrame, InputAudioRawFrame, InputDTMFFrame

from voiceagent.frames import CallEndedFrame, CallStartedFrame, PlaybackMarkFrame
from voiceagent.settings import TransportSettings
from voiceagent.transports.twilio.codec import StreamResampler, ulaw_to_pcm16

from .conftest import CallRig, TwilioScript, tone_ulaw


@pytest.fixture
def warnings_logged():
    lines: list[str] = []
    handler = logger.add(lines.append, level="WARNING", format="{message}")
    yield lines
    logger.remove(handler)


async def test_call_starts_with_its_parameters(rig: CallRig) -> None:
    await rig.feed(rig.twilio.connected())
    assert rig.probe.down == [] and not rig.call.started.is_set()
    await rig.feed(rig.twilio.start(clinic="bright-smile"))
    (started,) = rig.probe.downstream(CallStartedFrame)
    assert (started.stream_sid, started.call_sid, started.account_sid) == (
        "MZ0001",
        "CA0001",
        "AC0001",
    )
    assert started.custom_parameters == {"clinic": "bright-smile"}
    assert started.tracks == ["inbound"]
    assert rig.call.started.is_set()
    assert (rig.call.stream_sid, rig.call.call_sid) == ("MZ0001", "CA0001")
    assert rig.call.custom_parameters == {"clinic": "bright-smile"}
    assert rig.call.output.stream_sid == "MZ0001"
    assert rig.errors == []


async def test_caller_audio_arrives_as_16khz_pcm_through_a_stateful_resampler(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start())
    chunks = [tone_ulaw(20, freq=300 + 10 * i) for i in range(26)]  # the caller talks 0.52 s
    await rig.feed(*(rig.twilio.media(c) for c in chunks))
    frames = rig.probe.downstream(InputAudioRawFrame)
    assert frames and all(f.sample_rate == 16000 and f.num_channels == 1 for f in frames)
    reference = StreamResampler(8000, 16000, quality="QQ")
    expected = b"".join(reference.resample(ulaw_to_pcm16(c)) for c in chunks)
    got = np.frombuffer(b"".join(f.audio for f in frames), "<i2").astype(int)
    want = np.frombuffer(expected, "<i2").astype(int)
    assert len(got) == len(want)
    assert np.max(np.abs(got - want)) <= 2  # equal up to the resampler's dither
    assert len(expected) > 0.8 * 16000  # most of the 0.52 s, minus the filter's delay
    # Two 20 ms messages make one 40 ms frame (transport.caller_frame_ms), at once: no bursts.
    assert len(frames) == 13 and all(len(f.audio) == 1280 for f in frames[1:])
    assert rig.call.frames_in == 26


async def test_an_odd_message_waits_for_its_pair_and_no_key_overtakes_it(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start())
    await rig.feed(*(rig.twilio.media(tone_ulaw(20)) for _ in range(3)))
    assert len(rig.probe.downstream(InputAudioRawFrame)) == 1  # 40 ms out, 20 ms waiting
    await rig.feed(rig.twilio.dtmf("5"))  # the caller's third 20 ms goes before the key
    caller = (InputAudioRawFrame, InputDTMFFrame)
    kinds = [type(f).__name__ for f in rig.probe.down if isinstance(f, caller)]
    assert kinds == ["InputAudioRawFrame", "InputAudioRawFrame", "InputDTMFFrame"]


async def test_twenty_ms_frames_when_asked() -> None:
    rig = CallRig(settings=TransportSettings(caller_frame_ms=20))
    await rig.start()
    try:
        await rig.feed(rig.twilio.start())
        await rig.feed(*(rig.twilio.media(tone_ulaw(20)) for _ in range(10)))
        frames = rig.probe.downstream(InputAudioRawFrame)
        assert len(frames) >= 9 and all(len(f.audio) == 640 for f in frames[1:])
    finally:
        await rig.shutdown()


async def test_outbound_track_media_is_ignored(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start())
    message = json.loads(rig.twilio.media(tone_ulaw(20)))
    message["media"]["track"] = "outbound"
    await rig.feed(*[json.dumps(message)] * 10)
    assert rig.probe.downstream(InputAudioRawFrame) == [] and rig.call.frames_in == 0
    assert rig.errors == []


async def test_caller_presses_pound(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start(), rig.twilio.dtmf("#"), rig.twilio.dtmf("7"))
    buttons = [f.button for f in rig.probe.downstream(InputDTMFFrame)]
    assert buttons == [KeypadEntry.POUND, KeypadEntry.SEVEN]


async def test_a_mark_echo_goes_down_the_pipeline(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start(), rig.twilio.mark("a1.1"))
    assert [f.mark_name for f in rig.probe.downstream(PlaybackMarkFrame)] == ["a1.1"]


async def test_caller_hangs_up_and_the_pipeline_ends(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start(), rig.twilio.media(tone_ulaw(20)), rig.twilio.stop())
    await rig.finished()
    assert rig.call.ended.is_set()
    kinds = [type(f) for f in rig.probe.down if isinstance(f, (CallEndedFrame, EndFrame))]
    assert kinds == [CallEndedFrame, EndFrame]
    assert rig.probe.downstream(CallEndedFrame)[0].reason == "stop"
    # Anything after stop is ignored quietly.
    await rig.call.feed_text(rig.twilio.media(tone_ulaw(20)))
    assert rig.errors == []


async def test_socket_closing_without_stop_ends_the_call(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start())
    await rig.call.close()
    await rig.finished()
    assert rig.probe.downstream(CallEndedFrame)[0].reason == "socket_closed"


async def test_every_kind_of_bad_input_is_dropped_and_counted(rig: CallRig) -> None:
    other = TwilioScript(stream_sid="MZ9999")
    await rig.feed(rig.twilio.media(tone_ulaw(20)))  # before start
    await rig.feed(rig.twilio.start())
    media = json.loads(rig.twilio.media(tone_ulaw(20)))
    bad_b64 = json.loads(json.dumps(media))
    bad_b64["media"]["payload"] = "%%%%"
    empty = json.loads(json.dumps(media))
    empty["media"]["payload"] = ""
    no_payload = json.loads(json.dumps(media))
    del no_payload["media"]["payload"]
    await rig.feed(
        "hello twilio",
        '{"event": "dance"}',
        json.dumps(no_payload),
        other.media(tone_ulaw(20)),
        json.dumps(bad_b64),
        json.dumps(empty),
        rig.twilio.dtmf("X"),
        "x" * 70000,
    )
    await rig.call.feed_binary(b"\x00" * 160)
    assert rig.errors == [
        "media_before_start",
        "non_json",
        "unknown_event",
        "missing_field",
        "wrong_stream_sid",
        "bad_base64",
        "bad_payload_size",
        "bad_value",
        "too_large",
        "binary",
    ]
    assert rig.call.protocol_errors["non_json"] == 1
    assert rig.probe.downstream(InputAudioRawFrame) == []
    assert rig.probe.downstream(InputDTMFFrame) == []
    assert rig.call.should_close is None
    # The call still works.
    await rig.feed(*(rig.twilio.media(tone_ulaw(20)) for _ in range(10)))
    assert rig.probe.downstream(InputAudioRawFrame)


async def test_message_size_limit_is_configurable() -> None:
    rig = CallRig(max_message_bytes=1000)
    await rig.start()
    try:
        await rig.feed(rig.twilio.start())
        big = base64.b64encode(bytes(800)).decode()
        message = json.loads(rig.twilio.media(b"\xff"))
        message["media"]["payload"] = big
        await rig.feed(json.dumps(message))
        assert rig.errors == ["too_large"]
        # Non-ASCII text is measured in bytes, not characters.
        await rig.feed('{"event": "' + "é" * 600 + '"}')
        assert rig.errors == ["too_large", "too_large"]
    finally:
        await rig.shutdown()


async def test_a_flood_is_cut_to_the_token_bucket(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start())  # one token spent
    await rig.feed(*(rig.twilio.media(tone_ulaw(20)) for _ in range(120)))  # all in one instant
    assert rig.call.frames_in == 99
    assert rig.errors == ["flood"] * 21
    rig.clock.advance(0.25)  # 50 tokens come back at 200 msg/s
    await rig.feed(*(rig.twilio.media(tone_ulaw(20)) for _ in range(50)))
    assert rig.call.frames_in == 149 and len(rig.errors) == 21


async def test_twilio_pace_never_trips_the_flood_limit(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start())
    for _ in range(500):  # 10 s of caller audio at 50 msg/s
        await rig.call.feed_text(rig.twilio.media(tone_ulaw(20)))
        rig.clock.advance(0.02)
    assert rig.errors == [] and rig.call.frames_in == 500


async def test_too_many_errors_close_the_call(rig: CallRig, warnings_logged: list[str]) -> None:
    await rig.feed(rig.twilio.start())
    for _ in range(50):
        await rig.call.feed_text("garbage")
        rig.clock.advance(0.1)
    assert rig.call.should_close is None  # 50 errors within 10 s are tolerated
    await rig.call.feed_text("garbage")
    assert rig.call.should_close is not None and "too many protocol errors" in rig.call.should_close
    await rig.finished()
    assert rig.probe.downstream(CallEndedFrame)[0].reason == "protocol_errors"
    # Closed: nothing more is even looked at.
    await rig.call.feed_text("garbage")
    assert len(rig.errors) == 51


async def test_errors_spread_over_time_do_not_close_the_call(rig: CallRig) -> None:
    await rig.feed(rig.twilio.start())
    for _ in range(200):
        await rig.call.feed_text("garbage")
        rig.clock.advance(0.25)  # 4 errors per second: 40 per window
    assert rig.call.should_close is None and len(rig.errors) == 200


async def test_warnings_are_rate_limited_per_kind(rig: CallRig, warnings_logged: list[str]) -> None:
    await rig.feed(rig.twilio.start())
    for _ in range(20):
        await rig.call.feed_text("garbage")
    await rig.call.feed_text('{"event": "dance"}')
    dropped = [line for line in warnings_logged if "dropped inbound message" in line]
    assert len(dropped) == 2
    assert "[non_json]" in dropped[0] and "not JSON" in dropped[0]
    assert "[unknown_event]" in dropped[1] and "dance" in dropped[1]
    rig.clock.advance(5.0)
    await rig.call.feed_text("garbage")
    dropped = [line for line in warnings_logged if "dropped inbound message" in line]
    assert len(dropped) == 3 and "+19 more" in dropped[2]


async def test_a_non_mulaw_stream_is_refused_with_a_clear_reason(rig: CallRig) -> None:
    fmt = {"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1}
    await rig.feed(rig.twilio.start(media_format=fmt))
    assert rig.call.should_close is not None and "audio/x-mulaw" in rig.call.should_close
    assert rig.errors == ["bad_value"]
    assert rig.probe.downstream(CallStartedFrame) == []
    await rig.finished()
    assert rig.probe.downstream(CallEndedFrame)[0].reason == "bad_media_format"


async def test_feed_never_raises_even_if_the_error_callback_does() -> None:
    def explode(kind: str) -> None:
        raise RuntimeError("metrics backend down")

    rig = CallRig()
    rig.call.serializer._on_protocol_error = explode
    await rig.start()
    try:
        await rig.call.feed_text("garbage")
        await rig.call.feed_binary(b"\x01")
        await rig.feed(rig.twilio.start())
        assert rig.call.started.is_set()
    finally:
        await rig.shutdown()


async def test_the_stream_origin_is_read_from_the_media_timestamps(rig: CallRig) -> None:
    """Twilio's timestamps say when each 20 ms chunk was captured: a chunk that arrives late
    (jitter) does not move the stream's t = 0; the earliest arrival sets it."""
    start = rig.clock.now()
    await rig.feed(rig.twilio.start())
    assert rig.call.serializer.stream_origin is None
    rig.clock.advance(0.025)  # chunk 1 (0-20 ms) arrives 5 ms after its capture ended
    await rig.feed(rig.twilio.media(tone_ulaw(20)))
    assert rig.call.serializer.stream_origin == pytest.approx(start + 0.005)
    rig.clock.advance(0.080)  # chunk 2 (20-40 ms) arrives 65 ms late: no change
    await rig.feed(rig.twilio.media(tone_ulaw(20)))
    assert rig.call.serializer.stream_origin == pytest.approx(start + 0.005)
    rig.clock.advance(0.0)  # chunk 3 (40-60 ms) arrives at 105 ms, chunk 4 (60-80) too
    await rig.feed(rig.twilio.media(tone_ulaw(20)), rig.twilio.media(tone_ulaw(20)))
    assert rig.call.serializer.stream_origin == pytest.approx(start + 0.005)


async def test_media_without_a_timestamp_is_heard_but_places_no_stream_origin(
    rig: CallRig,
) -> None:
    await rig.feed(rig.twilio.start())
    rig.clock.advance(0.025)
    await rig.feed(rig.twilio.media(tone_ulaw(20), timestamp=False))
    assert rig.call.frames_in == 1 and rig.call.serializer.stream_origin is None
    await rig.feed(rig.twilio.media(tone_ulaw(20)))  # chunk 2, captured 20-40 ms
    assert rig.call.serializer.stream_origin == pytest.approx(rig.clock.now() - 0.04)
