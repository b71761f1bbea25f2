"""Shared by the live STT server tests: real-time streaming and the protocol's invariants."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from deepgram.listen.v1.types import (
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)

from bench.fakes.deepgram_live import ConnectionRecord
from bench.fakes.phone_speech import SpeechUnavailable, asterisk_prompt
from voiceagent.transports.twilio.codec import StreamResampler

PIPECAT_QUERY = (
    "model=nova-3&encoding=linear16&sample_rate=16000&channels=1&interim_results=true"
    "&endpointing=300&utterance_end_ms=1000&vad_events=true&smart_format=true&punctuate=true"
)
_MODELS = {
    "Results": ListenV1Results,
    "UtteranceEnd": ListenV1UtteranceEnd,
    "SpeechStarted": ListenV1SpeechStarted,
    "Metadata": ListenV1Metadata,
}
TOLERANCE_S = 0.002  # times are sent rounded to the millisecond


def prompt(name: str) -> tuple[bytes, str]:
    try:
        return asterisk_prompt(name)
    except SpeechUnavailable as e:
        pytest.skip(str(e))


def to_16k(pcm8k: bytes) -> bytes:
    resampler = StreamResampler(8000, 16000)
    return resampler.resample(pcm8k) + resampler.flush()


async def pace(send, audio: bytes, chunk: int, bytes_per_s: int) -> None:
    """Send ``audio`` in ``chunk``-byte messages at real-time pace."""
    began = time.monotonic()
    for i in range(0, len(audio), chunk):
        await send(audio[i : i + chunk])
        await asyncio.sleep(max(0.0, began + (i + chunk) / bytes_per_s - time.monotonic()))


@asynccontextmanager
async def listen(server, query: str = PIPECAT_QUERY, key: str | None = None):
    """A raw ``/v1/listen`` socket (for what pipecat's client does not show)."""
    headers = {"Authorization": f"Token {key or server.api_key}"}
    url = f"{server.url}/v1/listen?{query}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers) as ws:
        yield ws


async def received(ws) -> list[dict[str, Any]]:
    """Every JSON message until the server closes the socket."""
    out = []
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            out.append(json.loads(msg.data))
    return out


def results(record: ConnectionRecord, *, final: bool | None = None) -> list[dict[str, Any]]:
    return [m.body for m in record.of("Results") if final is None or m.body["is_final"] == final]


def transcript(body: dict[str, Any]) -> str:
    return body["channel"]["alternatives"][0]["transcript"]


def words_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["channel"]["alternatives"][0]["words"]


def check_protocol_invariants(record: ConnectionRecord) -> None:
    """What must hold of every stream, whatever was recognized."""
    for sent in record.sent:
        _MODELS[sent.body["type"]].model_validate(sent.body)  # deepgram-sdk's own models
    finals_so_far = 0.0
    next_start = 0.0
    for sent in record.of("Results"):
        body = sent.body
        start, end = body["start"], body["start"] + body["duration"]
        for w in words_of(body):  # word times inside the window, in order
            assert start - TOLERANCE_S <= w["start"] <= w["end"] <= end + TOLERANCE_S, (w, body)
        if body["is_final"]:  # finals tile the audio: no gap, no overlap
            assert abs(start - next_start) <= TOLERANCE_S, (start, next_start)
            next_start = finals_so_far = end
        else:  # an interim lags: it covers audio already sent, of the open window only
            assert start >= finals_so_far - TOLERANCE_S
            assert end <= sent.audio_s + TOLERANCE_S, (end, sent.audio_s)
            if words_of(body):
                assert words_of(body)[-1]["end"] <= sent.audio_s + TOLERANCE_S
