"""examples/custom_bot.py: a bike shop's bot with its own prompt, greeting and tool, served by
the real server (in process, and by ``voiceagent serve --bot examples/custom_bot.py:factory``)
and called by the caller emulator; Deepgram and the LLM are loopback fakes.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.e2e.e2e_harness import SPEECH_RMS, CallEvents, caller_line_pcm8k, rms, window
from voiceagent.emulator.script import CallerLine

from .examples_harness import (
    EXAMPLES,
    FakeDeepgramHost,
    FakeDeepgramTTS,
    FakeToolCall,
    FakeUtterance,
    ScriptedLLM,
    call,
    call_example,
    cloud_settings,
    deepgram_stt,
    phone_tts,
    tokens,
)

pytestmark = pytest.mark.slow

QUESTION = "Is my bike ready? The ticket is 1042."
GREETING = "Harbor Bikes, this is the repair desk. How can I help?"


def repair_desk_llm() -> ScriptedLLM:
    """Looks the ticket up with the bot's tool, then says what the tool said."""

    def answer(messages: list[dict]) -> list[str]:
        result = next(m["content"] for m in reversed(messages) if m.get("role") == "tool")
        status = re.search(r'"status": "([^"]+)"', result)
        return tokens(f"Sure, your bike is {status.group(1) if status else 'not found'}.")

    return ScriptedLLM(answer, tool=FakeToolCall("repair_status", {"ticket": "1042"}))


def fakes():
    return deepgram_stt(FakeUtterance(QUESTION.split(), interim_words=3)), phone_tts()


def assert_greeted_and_answered(tts: FakeDeepgramTTS, llm: ScriptedLLM, report, events) -> None:
    assert tts.spoken[0] == GREETING
    greeting_start, greeting_end = events.utterances()[0]
    assert rms(window(report.heard_pcm8k, greeting_start, greeting_end)) > SPEECH_RMS
    first = llm.requests[0]
    assert "Harbor Bikes" in first["messages"][0]["content"]  # the bot's own prompt
    assert [t["function"]["name"] for t in first["tools"]] == ["repair_status"]
    answer = "Sure, your bike is ready for pick-up, the bill is 85 dollars."
    assert " ".join(tts.spoken[1:]) == answer  # the tool's result, spoken
    turn = report.turns[0]
    assert turn.latency_ms is not None, "the caller heard no answer"
    heard = window(report.heard_pcm8k, turn.first_agent_audio_s, turn.first_agent_audio_s + 0.5)
    assert rms(heard) > SPEECH_RMS


async def test_the_custom_bot_greets_looks_the_repair_up_and_is_heard(tmp_path: Path):
    line = caller_line_pcm8k(QUESTION, tmp_path)
    stt, tts = fakes()
    async with FakeDeepgramHost(stt, tts) as host, repair_desk_llm() as llm:
        settings = cloud_settings(host.url, llm.base_url)
        lines = [CallerLine(line, text=QUESTION)]
        bot, report, events = await call_example("custom_bot", settings, lines)
    assert_greeted_and_answered(tts, llm, report, events)
    said = bot.assistant_messages()
    assert said[0] == GREETING and said[-1].startswith("Sure, your bike is ready")
    tool_results = [m for m in bot.turns[0].conversation.messages if m["role"] == "tool"]
    assert tool_results and "ready for pick-up" in tool_results[0]["content"]


async def test_voiceagent_serve_runs_the_example_file_as_a_bot(tmp_path: Path):
    """The command from the example's docstring, as a user runs it."""
    line = caller_line_pcm8k(QUESTION, tmp_path)
    stt, tts = fakes()
    async with FakeDeepgramHost(stt, tts) as host, repair_desk_llm() as llm:
        env = {
            **os.environ,
            "DEEPGRAM_API_KEY": "dg-test-key",
            "VOICEAGENT_CLOUD__DEEPGRAM_URL": host.url,
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "sk-test",
            "VOICEAGENT_FALLBACK__STT": "",
            "VOICEAGENT_FALLBACK__LLM": "",
            "VOICEAGENT_FALLBACK__TTS": "",
            "VOICEAGENT_STORAGE__ENABLED": "0",
        }
        server = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "voiceagent.cli", "serve", "--port", "0", "--workers", "1"),
            *("--bot", "examples/custom_bot.py:factory"),
            cwd=EXAMPLES.parent,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output: list[str] = []
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(_read_output(server, output, port))
        try:
            events = CallEvents()
            url = f"ws://127.0.0.1:{await asyncio.wait_for(port, 60.0)}/media"
            report = await call(url, [CallerLine(line, text=QUESTION)], events)
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 30.0)
            await reader
    assert_greeted_and_answered(tts, llm, report, events)


async def _read_output(
    server: asyncio.subprocess.Process, output: list[str], port: asyncio.Future[int]
) -> None:
    """Keep reading the server's output (a full pipe would stall it); note its port."""
    assert server.stdout is not None
    while line := (await server.stdout.readline()).decode():
        output.append(line)
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if found and not port.done():
            port.set_result(int(found.group(1)))
    if not port.done():
        port.set_exception(AssertionError(f"voiceagent serve exited: {''.join(output)}"))
