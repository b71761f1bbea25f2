"""examples/custom_tts.py: a TTS provider written the Pipecat way (eSpeak NG) on
``VoiceTTSService``. The caller cuts into its reply; the conversation keeps exactly the heard
part, and the agent answers the interruption (server, emulator real; Deepgram STT and the LLM
are loopback fakes).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.e2e_harness import SPEECH_RMS, caller_line_pcm8k, rms, window
from voiceagent.emulator.script import CallerLine
from voiceagent.turns.conversation import INTERRUPTED_SUFFIX

from .examples_harness import (
    FakeDeepgramHost,
    FakeDeepgramTTS,
    FakeUtterance,
    ScriptedLLM,
    call_example,
    cloud_settings,
    deepgram_stt,
)
from .examples_harness import tokens as stream

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]

QUESTION = "When are you open?"
INTERRUPTION = "Wait, stop please."
HOURS = (
    "Sure, we open at nine on weekdays and close at six. On Saturdays we open at ten and "
    "close at four. On Sundays and public holidays the shop stays closed all day."
)
GO_ON = "Of course, go ahead."


def hours_llm() -> ScriptedLLM:
    def answer(messages: list[dict]) -> list[str]:
        last = [m["content"] for m in messages if m["role"] == "user"][-1]
        return stream(GO_ON if "Wait" in last else HOURS)

    return ScriptedLLM(answer)


async def test_a_pipecat_style_tts_keeps_only_what_the_caller_heard_after_a_barge_in(
    tmp_path: Path,
):
    lines = [
        CallerLine(caller_line_pcm8k(QUESTION, tmp_path), pause_after_s=1.0, text=QUESTION),
        CallerLine(
            caller_line_pcm8k(INTERRUPTION, tmp_path),
            pause_after_s=2.0,
            text=INTERRUPTION,
            start_after_agent_audio_s=2.0,  # into the hours, well before Sundays
        ),
    ]
    stt = deepgram_stt(
        FakeUtterance(QUESTION.split(), interim_words=2),
        FakeUtterance(INTERRUPTION.split(), interim_words=1),
        interim_after_bytes=6400,
    )
    tts = FakeDeepgramTTS()  # not used: the example's eSpeak NG speaks
    async with FakeDeepgramHost(stt, tts) as host, hours_llm() as llm:
        settings = cloud_settings(host.url, llm.base_url, agent={"greeting": "Harbor Bikes."})
        bot, report, _ = await call_example("custom_tts", settings, lines)

    heard_turns = [(h.text, h.interrupted) for h in bot.heard]
    print(f"\nheard {heard_turns}; said {bot.assistant_messages()}")
    assert not tts.spoken  # every word came from eSpeak NG
    assert len(report.turns) == 2
    greeting, hours, *after = bot.heard
    assert greeting.text == "Harbor Bikes." and not greeting.interrupted
    # The hours were cut: the caller heard a prefix, ending on a whole word.
    assert report.clears >= 1
    assert hours.interrupted and hours.full_text == HOURS
    assert hours.text and HOURS.startswith(hours.text) and len(hours.text) < len(HOURS)
    assert "Sure, we open at nine" in hours.text  # the first chunks were played and echoed
    assert "Sundays" not in hours.text and "Sundays" in hours.unheard_text
    # The conversation holds exactly the heard part, never the unheard rest.
    said = bot.assistant_messages()
    assert said[1] == f"{hours.text}{INTERRUPTED_SUFFIX}"
    assert not any("Sundays" in text for text in said[:2])
    # The agent answered the interruption, and the caller heard it.
    assert after and after[-1].full_text == GO_ON
    turn = report.turns[1]
    assert turn.latency_ms is not None, "no answer after the barge-in"
    heard = window(report.heard_pcm8k, turn.first_agent_audio_s, turn.first_agent_audio_s + 0.5)
    assert rms(heard) > SPEECH_RMS
