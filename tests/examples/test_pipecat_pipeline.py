"""examples/pipecat_pipeline.py: the turn engine in a plain pipecat pipeline, on pipecat's own
FastAPI WebSocket transport with ``TwilioFrameSerializer`` (no voiceagent server). Served by
uvicorn on 127.0.0.1, called by the caller emulator; Deepgram and the LLM are loopback fakes.
The caller cuts into the greeting: Twilio is told to ``clear``, the greeting's record and the
conversation keep only the heard part, and the agent's answer is heard.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.e2e.e2e_harness import SPEECH_RMS, CallEvents, caller_line_pcm8k, rms, window
from voiceagent.emulator.script import CallerLine
from voiceagent.turns.conversation import INTERRUPTED_SUFFIX
from voiceagent.turns.processor import TurnProcessor

from .examples_harness import (
    FakeDeepgramHost,
    FakeUtterance,
    ScriptedLLM,
    call,
    cloud_settings,
    deepgram_stt,
    load_example,
    phone_tts,
    tokens,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("fastapi") is None,
        reason="the example needs fastapi and uvicorn",
    ),
]

GREETING = (
    "Hello, you have reached Harbor Bikes. We repair road bikes, mountain bikes and electric "
    "bikes, and we are open every day of the week except on public holidays."
)
QUESTION = "Wait, do you fix scooters?"
ANSWER = "Sorry, we only repair bicycles."


@asynccontextmanager
async def uvicorn_serving(app) -> AsyncIterator[int]:
    """Serve the example's FastAPI app on a free loopback port; yields the port."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task  # it failed: say why
            await asyncio.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30.0)
        sock.close()


async def test_the_turn_engine_on_pipecats_transport_keeps_only_what_was_heard(tmp_path: Path):
    example = load_example("pipecat_pipeline")
    line = CallerLine(
        caller_line_pcm8k(QUESTION, tmp_path),
        pause_after_s=2.0,
        text=QUESTION,
        start_after_agent_audio_s=1.2,  # into the greeting's first sentence
    )
    stt = deepgram_stt(FakeUtterance(QUESTION.split(), interim_words=1), interim_after_bytes=6400)
    tts = phone_tts()
    calls: list[list] = []
    async with FakeDeepgramHost(stt, tts) as host, ScriptedLLM(lambda m: tokens(ANSWER)) as llm:
        settings = cloud_settings(host.url, llm.base_url, agent={"greeting": GREETING})
        async with uvicorn_serving(example.create_app(settings, on_call=calls.append)) as port:
            events = CallEvents()
            report = await call(f"ws://127.0.0.1:{port}/media", [line], events, tail_s=2.5)

    [processors] = calls
    [turns] = [p for p in processors if isinstance(p, TurnProcessor)]
    said = [m["content"] for m in turns.conversation.messages if m["role"] == "assistant"]
    users = [m["content"] for m in turns.conversation.messages if m["role"] == "user"]
    print(f"\nclears {report.clears}; said {said}; caller {users}; tts {tts.spoken}")

    # The greeting was heard, then cut: Twilio was told to clear, after the caller began.
    assert tts.spoken[0] == GREETING
    greeting_start, greeting_end = events.utterances()[0]
    assert rms(window(report.heard_pcm8k, greeting_start, greeting_end)) > SPEECH_RMS
    assert report.clears >= 1
    clear_t = events.of("clear")[0]["t"]
    assert clear_t > report.turns[0].caller_start_s
    assert greeting_end <= clear_t + 0.3, "the greeting played on after the clear"
    # The conversation holds the heard start of the greeting only, marked cut off.
    heard = said[0].removesuffix(INTERRUPTED_SUFFIX)
    assert said[0].endswith(INTERRUPTED_SUFFIX)
    assert heard and GREETING.startswith(heard) and len(heard) < len(GREETING)
    assert "holidays" not in said[0]
    # It is what the caller's earpiece played before the clear (the fake TTS speaks 240 samples
    # a character, here at the phone's 8 kHz; the ledger cuts at whole words).
    assert tts.queries[0]["sample_rate"] == "8000"  # no resampling between the TTS and Twilio
    per_char_s = 240 / 8000
    played_s = clear_t - greeting_start
    print(f"played {played_s:.2f} s of the greeting; the ledger: {len(heard) * per_char_s:.2f} s")
    assert abs(len(heard) * per_char_s - played_s) < 0.4
    assert users == [QUESTION]
    # The answer was asked with that conversation, spoken and heard.
    assert llm.requests[-1]["messages"][1] == {
        "role": "assistant",
        "content": said[0],
    }
    assert " ".join(tts.spoken[1:]) == ANSWER
    assert said[-1] == ANSWER
    turn = report.turns[0]
    assert turn.latency_ms is not None, "no answer after the barge-in"
    answer = window(report.heard_pcm8k, turn.first_agent_audio_s, turn.first_agent_audio_s + 0.5)
    assert rms(answer) > SPEECH_RMS
