"""Deepgram STT and TTS against protocol-faithful fakes on 127.0.0.1: frames in, frames out."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest
from loguru import logger
from pipecat.frames.frames import (
    AggregatedTextFrame,
    ErrorFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.utils.text.base_text_aggregator import TextType

from voiceagent.services.deepgram import create_deepgram_stt, create_deepgram_tts
from voiceagent.settings import CloudSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/services: shared fakes
from fakes.fake_deepgram import FakeDeepgramSTT, FakeDeepgramTTS, FakeUtterance  # noqa: E402
from fakes.harness import LivePipeline, until  # noqa: E402

FRAME = bytes(640)  # 20 ms of PCM16 at 16 kHz


def cloud(fake, key: str = "dg-test-key") -> CloudSettings:
    return CloudSettings(deepgram_api_key=key, deepgram_url=fake.url)


def audio() -> InputAudioRawFrame:
    return InputAudioRawFrame(audio=FRAME, sample_rate=16000, num_channels=1)


@pytest.fixture
def errors_logged():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="ERROR")
    yield lines
    logger.remove(sink)


async def speak(pipe: LivePipeline, frames: int) -> None:
    await pipe.push(VADUserStartedSpeakingFrame())
    for _ in range(frames):
        await pipe.push(audio())
    await pipe.push(VADUserStoppedSpeakingFrame())


async def test_caller_audio_becomes_partials_then_a_final():
    utterance = FakeUtterance(["What", "time", "do", "you", "open?"], interim_words=2)
    async with FakeDeepgramSTT([utterance], interim_after_bytes=6400) as fake:
        async with LivePipeline(create_deepgram_stt(cloud(fake))) as pipe:
            await speak(pipe, 25)
            await pipe.wait_for(lambda: pipe.down_of(TranscriptionFrame), 5.0)
            await until(lambda: len(fake.audio) >= 25 * len(FRAME), 2.0)
        partials = pipe.down_of(InterimTranscriptionFrame)
        finals = pipe.down_of(TranscriptionFrame)
    assert [p.text for p in partials] == ["What time"]
    assert [f.text for f in finals] == ["What time do you open?"]
    assert pipe.down.frames.index(partials[0]) < pipe.down.frames.index(finals[0])
    assert len(fake.audio) == 25 * len(FRAME)  # every caller frame reached Deepgram
    query = fake.queries[0]
    assert query["model"] == "nova-3" and query["encoding"] == "linear16"
    assert query["sample_rate"] == "16000" and query["channels"] == "1"
    assert query["interim_results"] == "true" and query["endpointing"] == "300"
    assert query["utterance_end_ms"] == "1000" and query["vad_events"] == "true"
    assert query["smart_format"] == "true" and query["punctuate"] == "true"
    assert "permessage-deflate" not in fake.extensions[0]  # audio does not compress
    assert fake.messages_of("Finalize")  # sent at VAD stop
    assert fake.messages_of("CloseStream")  # sent when the call ended


@pytest.mark.parametrize("status", [401, 402, 429])
async def test_a_refused_stt_handshake_is_a_clear_error_and_the_call_goes_on(status, errors_logged):
    async with FakeDeepgramSTT([FakeUtterance(["hi"])]) as fake:
        fake.reject_status = status
        stt = create_deepgram_stt(cloud(fake))
        async with LivePipeline(stt) as pipe:
            await pipe.wait_for(lambda: pipe.up_of(ErrorFrame), 5.0, recorder=pipe.up)
            await speak(pipe, 5)  # the pipeline still runs: frames pass through
            await pipe.wait_for(lambda: pipe.down_of(VADUserStoppedSpeakingFrame), 2.0)
        error = pipe.up_of(ErrorFrame)[0]
    assert f"HTTP {status}" in error.error
    assert {401: "API key", 402: "credit", 429: "rate limited"}[status] in error.error
    assert "dg-test-key" not in error.error
    assert not stt.is_usable
    assert fake.handshakes == 1  # a refusal is not retried in a loop
    assert any(f"HTTP {status}" in line for line in errors_logged)
    assert not pipe.down_of(TranscriptionFrame)


async def test_a_wrong_key_is_refused_by_the_auth_header():
    async with FakeDeepgramSTT() as fake:
        stt = create_deepgram_stt(cloud(fake, key="wrong"))
        async with LivePipeline(stt) as pipe:
            await pipe.wait_for(lambda: pipe.up_of(ErrorFrame), 5.0, recorder=pipe.up)
    assert fake.refused == [401]
    assert "API key" in pipe.up_of(ErrorFrame)[0].error


async def test_agent_text_comes_back_as_audio_with_its_text_after_it():
    async with FakeDeepgramTTS() as fake, aiohttp.ClientSession() as http:
        async with LivePipeline(create_deepgram_tts(cloud(fake), http)) as pipe:
            await pipe.push(LLMFullResponseStartFrame())
            await pipe.push(AggregatedTextFrame("Sure, we open at nine.", TextType.SENTENCE))
            await pipe.push(AggregatedTextFrame("See you then!", TextType.SENTENCE))
            await pipe.push(LLMFullResponseEndFrame())
            await pipe.wait_for(lambda: pipe.down_of(LLMFullResponseEndFrame), 5.0)
        audio_frames = pipe.down_of(TTSAudioRawFrame)
        texts = pipe.down_of(TTSTextFrame)
    assert fake.spoken == ["Sure, we open at nine.", "See you then!"]
    assert sum(len(f.audio) for f in audio_frames) == fake.audio_bytes_sent > 0
    assert all(f.sample_rate == 16000 for f in audio_frames)
    assert fake.queries[0]["model"] == "aura-2-thalia-en"
    assert fake.queries[0]["encoding"] == "linear16"
    assert fake.queries[0]["sample_rate"] == "16000"
    assert fake.queries[0]["container"] == "none"  # no WAV header in the caller's audio
    # One request per chunk: each chunk's text comes right after its own audio, so the
    # output can put a Twilio mark at every clause boundary.
    order = pipe.down.frames
    assert [t.text.strip() for t in texts] == ["Sure, we open at nine.", "See you then!"]
    first_text, second_text = (order.index(t) for t in texts)
    between = [f for f in order[first_text:second_text] if isinstance(f, TTSAudioRawFrame)]
    before = [f for f in order[:first_text] if isinstance(f, TTSAudioRawFrame)]
    assert before and between
    last_audio = max(order.index(f) for f in audio_frames)
    assert order.index(pipe.down_of(TTSStoppedFrame)[0]) > last_audio


async def test_a_refused_tts_request_is_a_clear_error(errors_logged):
    async with FakeDeepgramTTS() as fake, aiohttp.ClientSession() as http:
        fake.reject_status = 402
        async with LivePipeline(create_deepgram_tts(cloud(fake), http)) as pipe:
            await pipe.push(TTSSpeakFrame("Hello."))
            await pipe.wait_for(lambda: pipe.up_of(ErrorFrame), 5.0, recorder=pipe.up)
            await asyncio.sleep(0.2)
        error = pipe.up_of(ErrorFrame)[0]
    assert "HTTP 402" in error.error and "credits" in error.error
    assert any("HTTP 402" in line for line in errors_logged)
    assert not pipe.down_of(TTSAudioRawFrame)


async def test_a_deepgram_host_that_never_answers_does_not_hold_up_the_call():
    """pipecat connects while the pipeline is set up and waits there; a host that accepts the
    TCP connection and never answers the WebSocket handshake held every stage of the call."""
    held: list[asyncio.StreamWriter] = []

    async def accept_and_stay_silent(_reader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_stay_silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cloud = CloudSettings(deepgram_api_key="dg-test-key", deepgram_url=f"ws://127.0.0.1:{port}")
    stt = create_deepgram_stt(cloud)
    try:
        async with LivePipeline(stt) as pipe:
            await until(lambda: held, 5.0)  # the handshake is under way...
            assert not pipe.up_of(ErrorFrame) and stt.is_usable  # ...and the call has started
            await pipe.push(InputAudioRawFrame(b"\x00\x00" * 320, 16000, 1))  # not sent: no socket
            await pipe.push(VADUserStartedSpeakingFrame())
            await pipe.wait_for(lambda: pipe.down_of(VADUserStartedSpeakingFrame), 2.0)  # flowing
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_caller_audio_goes_out_in_100ms_messages_and_all_of_it_before_finalize():
    async with (
        FakeDeepgramSTT([FakeUtterance(["Hello"])]) as fake,
        LivePipeline(create_deepgram_stt(cloud(fake))) as pipe,
    ):
        await until(lambda: fake.connected.is_set(), 5.0)
        await speak(pipe, 12)  # 240 ms, then the VAD stop
        await until(lambda: fake.messages_of("Finalize"), 5.0)
    assert fake.audio_messages == [3200, 3200, 1280]  # 100 ms, 100 ms, the rest at the stop
    assert fake.messages_of("Finalize")[0]["_audio_bytes_before"] == 12 * len(FRAME)


def test_a_call_builds_its_stt_without_the_sdks_http_client():
    """pipecat's service makes deepgram-sdk's client, whose HTTP client reads the CA bundle at
    every call's start; the live STT never uses it, so it is a ListenClient from the start."""
    from deepgram import AsyncDeepgramClient
    from pipecat.services.deepgram import stt as pipecat_stt

    from voiceagent.services.deepgram_listen import ListenClient

    stt = create_deepgram_stt(CloudSettings(deepgram_api_key="k", deepgram_url="ws://h:9"))
    assert isinstance(stt._client, ListenClient)
    assert stt._client.url({"model": "nova-3", "keyterm": ["a", "b"]}) == (
        "ws://h:9/v1/listen?model=nova-3&keyterm=a&keyterm=b"
    )
    assert pipecat_stt.AsyncDeepgramClient is AsyncDeepgramClient  # pipecat's own again
