"""The Deepgram ``/v1/speak`` fake, called over REST (as voiceagent) and WebSocket (as pipecat)."""

from __future__ import annotations

import json

import aiohttp

from bench.fakes.deepgram_speak import DeepgramSpeak
from bench.fakes.deepgram_tts import DeepgramTTSServer

KEY = "dg-test-key"
AUTH = {"Authorization": f"Token {KEY}"}


def fast_server() -> DeepgramTTSServer:
    return DeepgramTTSServer(api_key=KEY, first_audio_s=0.0, ms_per_char=10.0, speed=1000.0)


async def test_a_clause_over_rest_streams_its_length_of_audio_in_the_asked_format() -> None:
    async with fast_server() as tts, aiohttp.ClientSession() as http:
        query = "encoding=mulaw&sample_rate=8000&container=none"
        url = f"{tts.http_url}/v1/speak?{query}"
        async with http.post(url, json={"text": "Hello there"}, headers=AUTH) as response:
            assert response.status == 200
            audio = await response.read()
        async with http.post(url, json={"text": "Hi"}, headers={}) as refused:
            assert refused.status == 401
    assert len(audio) == round(len("Hello there") * 0.010 * 8000)  # one byte a μ-law sample
    assert len(set(audio)) > 10  # speech-like, not silence
    (synthesis,) = tts.syntheses
    assert synthesis.text == "Hello there" and synthesis.first_audio_at is not None
    assert (tts.speak.stats.texts, tts.speak.stats.refused) == (1, 1)


async def test_a_socket_speaks_on_flush_and_a_clear_is_answered() -> None:
    async with fast_server() as tts, aiohttp.ClientSession() as http:
        url = f"{tts.url}/v1/speak?encoding=linear16&sample_rate=16000"
        async with http.ws_connect(url, headers=AUTH) as ws:
            await ws.send_str(json.dumps({"type": "Speak", "text": "Good"}))
            await ws.send_str(json.dumps({"type": "Speak", "text": "morning"}))
            await ws.send_str(json.dumps({"type": "Flush"}))
            audio = b""
            while (message := await ws.receive()).type is aiohttp.WSMsgType.BINARY:
                audio += message.data
            assert json.loads(message.data) == {"type": "Flushed", "sequence_id": 1}
            await ws.send_str(json.dumps({"type": "Clear"}))
            assert json.loads((await ws.receive()).data) == {"type": "Cleared", "sequence_id": 1}
            await ws.send_str(json.dumps({"type": "Close"}))
    assert len(audio) == round(len("Good morning") * 0.010 * 16000) * 2
    assert [s.text for s in tts.syntheses] == ["Good morning"]
    assert (tts.speak.stats.connections, tts.speak.stats.clears) == (1, 1)


def test_a_text_longer_than_the_made_buffer_wraps_around_it() -> None:
    speak = DeepgramSpeak(api_key=KEY, ms_per_char=1000.0)
    audio, step = speak.audio("x" * 10, {"sample_rate": "8000"})
    assert len(audio) == 10 * 8000 * 2
    assert audio[: 8 * 8000 * 2] == audio[8 * 8000 * 2 :] + audio[2 * 8000 * 2 : 8 * 8000 * 2]
    assert step == 8000 * 2 * 40 // 1000
