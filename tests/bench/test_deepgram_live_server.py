"""The recognizing Deepgram-protocol server, called the way voiceagent calls Deepgram.

Real human phone prompts are streamed in real time through pipecat's own Deepgram client
(``create_deepgram_stt``) or a raw socket; assertions are properties of the protocol and
loose word error bounds, never exact words.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)

from bench.fakes.deepgram_live import DeepgramLiveServer, WhisperRecognizer
from bench.fakes.deepgram_live.recognizers import load_server_transcriber
from bench.fakes.phone_speech import silence
from tests.bench.live_stt import (
    check_protocol_invariants,
    listen,
    pace,
    prompt,
    received,
    results,
    to_16k,
    transcript,
    words_of,
)
from tests.services.fakes.harness import LivePipeline, until
from voiceagent.eval.metrics import wer
from voiceagent.services.deepgram import create_deepgram_stt
from voiceagent.settings import CloudSettings, LocalModelSettings

pytestmark = [pytest.mark.models, pytest.mark.slow]

FRAME_BYTES = 640  # 20 ms of PCM16 at 16 kHz, as pipecat sends it


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory):
    return load_server_transcriber(LocalModelSettings(cache_dir=tmp_path_factory.mktemp("c")))


@pytest.fixture
async def server(tiny_en):
    async with DeepgramLiveServer(WhisperRecognizer(transcriber=tiny_en)) as live:
        yield live


def cloud(server, key: str | None = None) -> CloudSettings:
    return CloudSettings(deepgram_api_key=key or server.api_key, deepgram_url=server.url)


async def say(pipe: LivePipeline, pcm16k: bytes) -> None:
    async def push(chunk: bytes) -> None:
        await pipe.push(InputAudioRawFrame(audio=chunk, sample_rate=16000, num_channels=1))

    await pace(push, pcm16k, FRAME_BYTES, 32000)


async def test_pipecats_client_gets_lagging_interims_then_an_endpointed_final(server):
    speech, reference = prompt("privacy-unident")  # "The party you are trying to reach ..."
    async with LivePipeline(create_deepgram_stt(cloud(server))) as pipe:
        await say(pipe, to_16k(silence(0.5) + speech + silence(1.6)))
        await pipe.wait_for(lambda: pipe.down_of(TranscriptionFrame), 5.0)
        await until(lambda: server.connections[0].of("UtteranceEnd"), 3.0)
    record = server.connections[0]
    assert record.closed_by == "close_stream" and record.close_code == 1000
    assert record.of("Metadata")  # CloseStream → Metadata, then the server closed
    check_protocol_invariants(record)

    query = record.query  # what pipecat asked for, as voiceagent configures it
    assert query["encoding"] == "linear16" and query["sample_rate"] == "16000"
    assert query["endpointing"] == "300" and query["utterance_end_ms"] == "1000"
    assert query["interim_results"] == "true" and query["vad_events"] == "true"

    partials = pipe.down_of(InterimTranscriptionFrame)
    finals = pipe.down_of(TranscriptionFrame)
    assert len(partials) >= 3
    assert pipe.down.frames.index(partials[0]) < pipe.down.frames.index(finals[0])
    heard = " ".join(f.text for f in finals)
    assert wer(reference, heard) <= 0.35, (reference, heard)
    last = finals[-1].result  # pipecat hands the turn engine Deepgram's message
    assert last.speech_final and not last.from_finalize  # no VAD stop: endpointing closed it
    assert last.channel.alternatives[0].words[-1].end <= last.start + last.duration

    (started,) = record.of("SpeechStarted")
    assert 0.3 <= started.body["timestamp"] <= 0.9  # the caller spoke after 0.5 s of quiet
    (end,) = record.of("UtteranceEnd")
    assert end.body["last_word_end"] == max(w["end"] for b in results(record) for w in words_of(b))
    assert end.audio_s >= end.body["last_word_end"] + 1.0  # utterance_end_ms of quiet heard


async def test_vad_stop_finalize_is_answered_from_finalize(server):
    speech, reference = prompt("vm-nobodyavail")  # "Nobody is available to take your call ..."
    async with LivePipeline(create_deepgram_stt(cloud(server))) as pipe:
        await pipe.push(VADUserStartedSpeakingFrame())
        await say(pipe, to_16k(silence(0.3) + speech + silence(0.2)))
        await pipe.push(VADUserStoppedSpeakingFrame())  # pipecat sends Finalize here
        await pipe.wait_for(lambda: pipe.down_of(TranscriptionFrame), 5.0)
        await say(pipe, to_16k(silence(0.6)))
    record = server.connections[0]
    check_protocol_invariants(record)
    assert {"type": "Finalize"} in record.controls
    final = pipe.down_of(TranscriptionFrame)[-1].result
    assert final.from_finalize and not final.speech_final
    heard = " ".join(f.text for f in pipe.down_of(TranscriptionFrame))
    assert wer(reference, heard) <= 0.35, (reference, heard)
    assert not [b for b in results(record, final=True) if b["speech_final"]]  # window closed


async def test_finalize_with_nothing_voiced_gets_an_empty_final(server):
    async with listen(server) as ws:
        await pace(ws.send_bytes, to_16k(silence(0.5)), FRAME_BYTES, 32000)
        await ws.send_str(json.dumps({"type": "Finalize"}))
        await asyncio.sleep(0.3)
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        messages = await received(ws)
    finals = [m for m in messages if m["type"] == "Results"]
    assert [(m["is_final"], m["from_finalize"], transcript(m)) for m in finals] == [
        (True, True, "")
    ]
    assert messages[-1]["type"] == "Metadata"
    assert messages[-1]["duration"] == pytest.approx(0.5, abs=0.03)


async def test_a_wrong_key_is_refused_with_401_and_dg_error(server):
    async with LivePipeline(create_deepgram_stt(cloud(server, key="wrong"))) as pipe:
        await pipe.wait_for(lambda: pipe.up_of(ErrorFrame), 5.0, recorder=pipe.up)
    assert "API key" in pipe.up_of(ErrorFrame)[0].error
    url = f"http://127.0.0.1:{server.port}/v1/listen?{QUERY}"
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        assert r.status == 401 and r.headers["dg-error"]
    assert server.refused == [401, 401]
    assert not server.connections


QUERY = "encoding=linear16&sample_rate=16000"


@pytest.mark.parametrize(
    "query",
    [
        "sample_rate=16000",
        "encoding=opus&sample_rate=48000",
        "encoding=mulaw&sample_rate=16000",
        QUERY + "&endpointing=soon",
        QUERY + "&channels=2",
    ],
)
async def test_a_query_deepgram_would_refuse_is_a_400_naming_the_parameter(server, query):
    headers = {"Authorization": f"Token {server.api_key}"}
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.port}/v1/listen?{query}"
        async with session.get(url, headers=headers) as r:
            assert r.status == 400
            message = (await r.json())["err_msg"]
    assert any(name in message for name in ("encoding", "sample_rate", "endpointing", "channels"))


async def test_mulaw_8k_phone_audio_is_transcribed(server):
    speech, reference = prompt("privacy-unident")
    from voiceagent.emulator.audio import ulaw_encode

    ulaw = ulaw_encode(silence(0.3) + speech + silence(0.5))
    query = "encoding=mulaw&sample_rate=8000&endpointing=300&punctuate=true"
    async with listen(server, query) as ws:
        await pace(ws.send_bytes, ulaw, 160, 8000)  # 20 ms Twilio frames
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        messages = await received(ws)
    record = server.connections[0]
    check_protocol_invariants(record)
    assert not results(record, final=False)  # interim_results was not asked for
    heard = " ".join(transcript(m) for m in messages if m["type"] == "Results")
    assert wer(reference, heard) <= 0.35, (reference, heard)
    assert record.audio_s == pytest.approx(len(ulaw) / 8000)


async def test_keepalive_holds_a_quiet_stream_open_and_silence_closes_it(tiny_en):
    async with (
        DeepgramLiveServer(WhisperRecognizer(transcriber=tiny_en), idle_timeout_s=0.6) as server,
        listen(server) as ws,
    ):
        for _ in range(6):  # 1.2 s with no audio, a KeepAlive every 0.2 s
            await ws.send_str(json.dumps({"type": "KeepAlive"}))
            await asyncio.sleep(0.2)
        assert not ws.closed
        began = time.monotonic()
        await received(ws)  # nothing more sent: the server gives up
        waited = time.monotonic() - began
    record = server.connections[0]
    assert record.closed_by == "idle" and ws.close_code == 1011
    assert 0.3 <= waited <= 1.5


async def test_a_slow_stt_sends_every_result_later(server):
    speech, _ = prompt("vm-nobodyavail")
    audio = to_16k(silence(0.3) + speech + silence(0.8))
    async with listen(server, PIPECAT_QUERY_SLOW) as ws:
        await pace(ws.send_bytes, audio, FRAME_BYTES, 32000)
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        await received(ws)
    record = server.connections[0]
    check_protocol_invariants(record)
    assert record.delay_s == 0.8
    streaming = [m for m in record.of("Results") if m.audio_s < record.audio_s - 0.05]
    lags = [m.audio_s - (m.body["start"] + m.body["duration"]) for m in streaming]
    assert len(lags) >= 3 and min(lags) >= 0.75  # recognition delay on top of the decode


PIPECAT_QUERY_SLOW = (
    "encoding=linear16&sample_rate=16000&interim_results=true&endpointing=300&x_delay_ms=800"
)


async def test_several_callers_at_once_each_get_their_own_transcript(server):
    clips = [prompt(name) for name in ("privacy-unident", "vm-nobodyavail", "pls-hold-while-try")]

    async def call(speech: bytes) -> list[dict]:
        async with listen(server) as ws:
            await pace(ws.send_bytes, to_16k(silence(0.3) + speech + silence(0.8)), 640, 32000)
            await ws.send_str(json.dumps({"type": "CloseStream"}))
            return await received(ws)

    heard = await asyncio.gather(*(call(speech) for speech, _ in clips))
    for (_, reference), messages in zip(clips, heard, strict=True):
        finals = [transcript(m) for m in messages if m["type"] == "Results" and m["is_final"]]
        assert wer(reference, " ".join(finals)) <= 0.4, (reference, finals)
    for record in server.connections:
        check_protocol_invariants(record)


async def test_one_word_answers_are_heard_once(server):
    hello, _ = prompt("hello")
    no, _ = prompt("vm-no")
    audio = to_16k(silence(0.5) + hello + silence(1.5) + no + silence(1.2))
    async with listen(server) as ws:
        await pace(ws.send_bytes, audio, FRAME_BYTES, 32000)
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        messages = await received(ws)
    finals = [transcript(m) for m in messages if m["type"] == "Results" and m["is_final"]]
    heard = " ".join(f for f in finals if f)
    assert wer("Hello. No.", heard) <= 0.5, finals
