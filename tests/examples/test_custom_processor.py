"""examples/custom_processor.py: a processor of your own inserted after the aggregator says
abbreviations out loud; the TTS gets the spoken words and the conversation keeps them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.e2e.e2e_harness import SPEECH_RMS, CallEvents, caller_line_pcm8k, rms, serving, window
from voiceagent.emulator.script import CallerLine

from .examples_harness import (
    ObservedBot,
    ScriptedLLM,
    call,
    cloud_settings,
    example_factory,
    load_example,
    tokens,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.fake_deepgram import (  # noqa: E402
    FakeDeepgramHost,
    FakeDeepgramSTT,
    FakeDeepgramTTS,
    FakeUtterance,
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
    stt = FakeDeepgramSTT(
        [FakeUtterance(QUESTION.split(), interim_words=2)], interim_after_bytes=9600, speech_rms=300
    )
    tts = FakeDeepgramTTS(amplitude=6000, bytes_per_char=480)
    async with (
        FakeDeepgramHost(stt, tts) as host,
        ScriptedLLM(lambda messages: tokens(WRITTEN)) as llm,
    ):
        settings = cloud_settings(host.url, llm.base_url)
        bot = ObservedBot(example_factory("custom_processor")(settings))
        await bot.start()
        try:
            async with serving(settings, bot) as server:
                events = CallEvents()
                report = await call(server.media_url, [CallerLine(line, text=QUESTION)], events)
        finally:
            await bot.stop()
    assert " ".join(tts.spoken[1:]) == SPOKEN  # what the TTS was asked to say
    assert bot.assistant_messages()[-1] == SPOKEN  # what the conversation says was heard
    turn = report.turns[0]
    assert turn.latency_ms is not None, "the caller heard no answer"
    heard = window(report.heard_pcm8k, turn.first_agent_audio_s, turn.first_agent_audio_s + 0.5)
    assert rms(heard) > SPEECH_RMS
