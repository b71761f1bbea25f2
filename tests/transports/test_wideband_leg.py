"""A wideband leg (the browser softphone's option): 16 kHz PCM16 media frames, same protocol.

The line format is fixed when the transport is made; ``start`` must declare it. Everything
else — marks after each segment, ``clear`` on barge-in, the heard ledger — is the same as on a
Twilio call, with 20 ms frames of 640 bytes instead of 160.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)

from voiceagent.frames import AgentHeardFrame, CallEndedFrame, CallStartedFrame
from voiceagent.transports.twilio.codec import pcm16_to_ulaw, ulaw_to_pcm16
from voiceagent.transports.twilio.line_format import LINE_FORMATS, MULAW_8K, PCM16_16K
from voiceagent.transports.twilio.serializer import AssignedStream

from .conftest import CallRig, tone_pcm

WIDEBAND = PCM16_16K.media_format()


def test_each_format_knows_its_frames_and_how_it_is_declared() -> None:
    assert (MULAW_8K.frame_samples, MULAW_8K.frame_bytes, MULAW_8K.bytes_per_s) == (160, 160, 8000)
    assert (PCM16_16K.frame_samples, PCM16_16K.frame_bytes, PCM16_16K.bytes_per_s) == (
        320,
        640,
        32000,
    )
    assert WIDEBAND == {"encoding": "audio/x-pcm16le", "sampleRate": 16000, "channels": 1}
    assert MULAW_8K.matches(MULAW_8K.media_format()) and not MULAW_8K.matches(WIDEBAND)
    assert PCM16_16K.matches(WIDEBAND)
    assert not PCM16_16K.matches({**WIDEBAND, "channels": 2})
    assert not PCM16_16K.matches({**WIDEBAND, "sampleRate": 8000})
    assert LINE_FORMATS == {"mulaw-8k": MULAW_8K, "pcm16-16k": PCM16_16K}


def test_mulaw_is_the_g711_codec_and_pcm16_passes_samples_through() -> None:
    pcm8 = tone_pcm(20, 8000)
    ulaw = MULAW_8K.from_pcm16(pcm8)
    assert ulaw == pcm16_to_ulaw(pcm8) and MULAW_8K.to_pcm16(ulaw) == ulaw_to_pcm16(ulaw)
    assert MULAW_8K.silence(3) == b"\xff\xff\xff"
    pcm16 = tone_pcm(20, 16000)
    assert PCM16_16K.to_pcm16(pcm16) == pcm16 == PCM16_16K.from_pcm16(pcm16)
    assert PCM16_16K.silence(2) == bytes(4)
    with pytest.raises(ValueError, match="odd length"):
        PCM16_16K.to_pcm16(b"\x01\x02\x03")


@pytest.fixture
async def wide() -> AsyncIterator[CallRig]:
    """A started rig whose transport carries 16 kHz PCM16."""
    rig = CallRig(line_format=PCM16_16K)
    await rig.start()
    try:
        yield rig
    finally:
        await rig.shutdown()


async def test_wideband_caller_audio_reaches_the_pipeline_sample_for_sample(wide: CallRig) -> None:
    await wide.feed(wide.twilio.start(media_format=WIDEBAND))
    assert wide.probe.downstream(CallStartedFrame)
    chunks = [tone_pcm(20, 16000, freq=300 + 10 * i) for i in range(10)]
    await wide.feed(*(wide.twilio.media(c) for c in chunks))
    frames = wide.probe.downstream(InputAudioRawFrame)
    # No codec, no resampler, no delay: two 20 ms messages per 40 ms frame, sample for sample.
    pairs = zip(chunks[::2], chunks[1::2], strict=True)
    assert [f.audio for f in frames] == [a + b for a, b in pairs]
    assert all(f.sample_rate == 16000 and f.num_channels == 1 for f in frames)
    assert wide.call.frames_in == 10 and wide.errors == []


async def test_a_wideband_message_holds_at_most_a_second_of_whole_samples(wide: CallRig) -> None:
    await wide.feed(wide.twilio.start(media_format=WIDEBAND))
    one_second = tone_pcm(1000, 16000)
    await wide.feed(
        wide.twilio.media(one_second),
        wide.twilio.media(one_second + b"\x00\x00"),  # one sample too many
        wide.twilio.media(b"\x01\x02\x03"),  # half a sample
    )
    assert wide.errors == ["bad_payload_size", "bad_payload_size"]
    assert b"".join(f.audio for f in wide.probe.downstream(InputAudioRawFrame)) == one_second
    assert wide.call.should_close is None


async def test_a_wideband_leg_refuses_a_mulaw_start(wide: CallRig) -> None:
    await wide.feed(wide.twilio.start())  # Twilio's μ-law
    assert wide.call.should_close is not None and "audio/x-pcm16le" in wide.call.should_close
    assert wide.probe.downstream(CallStartedFrame) == []
    await wide.finished()
    assert wide.probe.downstream(CallEndedFrame)[0].reason == "bad_media_format"


def agent_says(text: str, pcm: bytes, rate: int) -> list:
    step = rate // 25 * 2  # 40 ms chunks, as a TTS streams them
    audio = [TTSAudioRawFrame(pcm[i : i + step], rate, 1) for i in range(0, len(pcm), step)]
    return [TTSStartedFrame(), *audio, TTSTextFrame(text, "sentence"), TTSStoppedFrame()]


async def test_agent_speech_goes_out_in_640_byte_frames_marked_per_segment(wide: CallRig) -> None:
    await wide.feed(wide.twilio.start(media_format=WIDEBAND))
    pcm = tone_pcm(400, 16000, freq=220)
    await wide.queue(*agent_says("Hello there.", pcm, 16000))
    await wide.advance(0.8)
    payloads = [base64.b64decode(m["media"]["payload"]) for m in wide.wire.sent if "media" in m]
    assert all(len(p) == 640 for p in payloads)
    assert b"".join(payloads) == pcm  # 16 kHz TTS on a 16 kHz line: bit-exact
    assert wide.wire.events() == ["media"] * 20 + ["mark"] and wide.wire.marks() == ["a1.1"]
    (heard,) = wide.probe.upstream(AgentHeardFrame)
    assert (heard.text, heard.interrupted) == ("Hello there.", False)


async def test_24khz_tts_is_resampled_to_whole_wideband_frames(wide: CallRig) -> None:
    await wide.feed(wide.twilio.start(media_format=WIDEBAND))
    await wide.queue(*agent_says("Sure.", tone_pcm(1000, 24000), 24000))
    await wide.advance(1.5)
    payloads = [base64.b64decode(m["media"]["payload"]) for m in wide.wire.sent if "media" in m]
    assert all(len(p) == 640 for p in payloads) and abs(len(payloads) - 50) <= 1


async def test_barge_in_on_a_wideband_leg_clears_and_keeps_only_what_was_heard(
    wide: CallRig,
) -> None:
    await wide.feed(wide.twilio.start(media_format=WIDEBAND))
    first, second = "We open at nine.", "On Fridays we close at three."
    frames = agent_says(first, tone_pcm(1000, 16000), 16000)[:-1]
    frames += agent_says(second, tone_pcm(1000, 16000), 16000)[1:]
    await wide.queue(*frames)
    await wide.advance(1.5)  # the first sentence played, half of the second
    assert wide.playback.echoed == {"a1.1"}
    sent_before = len(wide.wire.sent)
    await wide.queue(InterruptionFrame())
    assert [m["event"] for m in wide.wire.sent[sent_before:]] == ["clear"]
    await wide.echo(*[n for n in wide.wire.marks() if n not in wide.playback.echoed])
    await wide.advance(0.5)
    assert [m["event"] for m in wide.wire.sent[sent_before:]] == ["clear"]  # no audio after it
    (heard,) = wide.probe.upstream(AgentHeardFrame)
    assert heard.interrupted and heard.text.startswith(first) and heard.text != heard.full_text
    assert heard.unheard_text and second.endswith(heard.unheard_text)


async def test_a_hosted_stream_must_use_the_identity_it_was_given() -> None:
    assigned = AssignedStream("MZ0001", "BR0001", {"channel": "browser", "From": "client:browser"})
    rig = CallRig(assigned=assigned)
    rig.twilio.call_sid = "CA-made-up"
    await rig.start()
    try:
        await rig.feed(rig.twilio.start(From="+15550100"))
        assert rig.call.should_close is not None and "BR0001" in rig.call.should_close
        await rig.finished()
        assert rig.probe.downstream(CallEndedFrame)[0].reason == "bad_stream_identity"
    finally:
        await rig.shutdown()


async def test_a_hosted_stream_keeps_the_parameters_the_server_gave_it() -> None:
    assigned = AssignedStream("MZ0001", "CA0001", {"channel": "browser", "From": "client:browser"})
    rig = CallRig(assigned=assigned)
    await rig.start()
    try:
        await rig.feed(rig.twilio.start(From="+15550100", lang="en"))
        (started,) = rig.probe.downstream(CallStartedFrame)
        assert started.custom_parameters == {
            "From": "client:browser",
            "lang": "en",
            "channel": "browser",
        }
    finally:
        await rig.shutdown()
