"""examples/custom_processor.py: a processor of your own inserted after the aggregator says
abbreviations out loud; the TTS gets the spoken words and the conversation keeps them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.e2e_harness import SPEECH_RMS, caller_line_pcm8k, rms, window
from voiceagent.emulator.script import CallerLine

from .examples_harness import (
    FakeDeepgramHost,
    FakeUtterance,
    ScriptedLLM,
    call_example,
    cloud_settings,
    deepgram_stt,
    load_example,
    phone_tts,
    tokens,
)

QUESTION = "Who can fix my wheel today?"
WRITTEN = "Sure, Dr. Lee is in on Main St. today & tomorrow."
SPOKEN = "Sure, Doctor Lee is in on Main Street today and tomorrow."


def spoken_forms():
    return load_example("custom_processor").SpokenForms()


def test_written_forms_are_rewritten_as_spoken_only_as_whole_words():
    forms = spoken_forms()
    spoken = forms.rewrite("Dr. Lee, Main St. & Mon–Fri")
    assert spoken == "Doctor Lee, Main Street and Monday to Friday"
    assert forms.rewrite("Drive to the Drugstore.") == "Drive to the Drugstore."


@pytest.mark.slow
async def test_the_inserted_processor_changes_what_is_spoken_and_heard(tmp_path: Path):
    line = caller_line_pcm8k(QUESTION, tmp_path)
    stt, tts = deepgram_stt(FakeUtterance(QUESTION.split(), interim_words=2)), phone_tts()
    async with (
        FakeDeepgramHost(stt, tts) as host,
        ScriptedLLM(lambda messages: tokens(WRITTEN)) as llm,
    ):
        settings = cloud_settings(host.url, llm.base_url)
        lines = [CallerLine(line, text=QUESTION)]
        bot, report, _ = await call_example("custom_processor", settings, lines)
    assert " ".join(tts.spoken[1:]) == SPOKEN  # what the TTS was asked to say
    assert bot.assistant_messages()[-1] == SPOKEN  # what the conversation says was heard
    turn = report.turns[0]
    assert turn.latency_ms is not None, "the caller heard no answer"
    heard = window(report.heard_pcm8k, turn.first_agent_audio_s, turn.first_agent_audio_s + 0.5)
    assert rms(heard) > SPEECH_RMS
