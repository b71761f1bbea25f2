"""The greetings are synthesized while the process starts; a call's first words play at once.

A scripted Piper voice stands in for the model: it counts what it is asked to synthesize, and
once "the calls begin" any synthesis would block until the test lets it go — so a greeting
that comes out while it is blocked was not synthesized on the call's path.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("piper")

from pipecat.frames.frames import TTSAudioRawFrame, TTSSpeakFrame, TTSStoppedFrame  # noqa: E402

from voiceagent.pipelines.resources import AgentResources  # noqa: E402
from voiceagent.services.local import piper_tts, weights  # noqa: E402
from voiceagent.services.local.piper_phrases import PreparedPhrases, fixed_phrases  # noqa: E402
from voiceagent.services.local.piper_tts import LocalPiperTTSService, next_sentence  # noqa: E402
from voiceagent.settings import Settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/services: shared fakes
from fakes.harness import LivePipeline  # noqa: E402

VOICE_RATE = 22050
GREETING = "Hello, thanks for calling Bright Smile Dental. How can I help you today?"


@dataclass
class Chunk:
    audio_int16_bytes: bytes


@dataclass
class Config:
    sample_rate: int = VOICE_RATE


@dataclass(eq=False)
class ScriptedVoice:
    """Piper's interface: one chunk of tone per sentence; synthesis may be held back."""

    config: Config = field(default_factory=Config)
    asked: list[str] = field(default_factory=list)
    go: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.go.set()

    def synthesize(self, text: str, syn_config=None):
        self.asked.append(text)
        for sentence in [s for s in text.replace("?", ".").split(".") if s.strip()]:
            if not self.go.wait(timeout=30):
                raise TimeoutError("synthesis was held back")
            seconds = 0.05 * len(sentence.split())
            t = np.arange(round(seconds * VOICE_RATE)) / VOICE_RATE
            yield Chunk((6000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes())


@pytest.fixture
def voice_files(tmp_path: Path) -> tuple[Path, Path]:
    model, config = tmp_path / "voice.onnx", tmp_path / "voice.onnx.json"
    model.write_bytes(b"scripted")
    config.write_text("{}")
    return model, config


def test_the_configured_phrases_are_the_greetings_and_the_voicemail_message():
    settings = Settings(
        agent={"greeting": GREETING},
        telephony={"outbound_greeting": "Hi, this is Bright Smile Dental calling."},
    )
    assert fixed_phrases(settings) == [
        GREETING,
        "Hi, this is Bright Smile Dental calling.",
        settings.telephony.voicemail_message,
    ]
    same = Settings(agent={"greeting": "Hi."}, telephony={"outbound_greeting": "Hi."})
    assert fixed_phrases(same)[:1] == ["Hi."] and fixed_phrases(same).count("Hi.") == 1


def test_a_phrase_is_synthesized_once_and_kept_sentence_by_sentence():
    voice = ScriptedVoice()
    phrases = PreparedPhrases(voice)
    assert phrases.prepare([GREETING, "", GREETING], next_sentence) == [GREETING]
    assert voice.asked == [GREETING] and len(phrases) == 1
    assert len(phrases.get(f"  {GREETING} ")) == 2  # the text as the TTS gets it, two sentences
    assert phrases.get("Something else.") is None
    assert phrases.prepare([GREETING]) == [] and voice.asked == [GREETING]


async def test_a_prepared_greeting_plays_without_waiting_for_piper(voice_files):
    voice = ScriptedVoice()
    phrases = PreparedPhrases(voice)
    await asyncio.to_thread(phrases.prepare, [GREETING], next_sentence)
    voice.go.clear()  # from now on Piper is "busy": a synthesis would wait
    model, config = voice_files
    tts = LocalPiperTTSService(model_path=model, config_path=config, voice=voice, phrases=phrases)
    try:
        async with LivePipeline(tts) as p:
            await p.push(TTSSpeakFrame(GREETING))
            await p.wait_for(lambda: bool(p.down_of(TTSStoppedFrame)), timeout=10)
            audio = p.down_of(TTSAudioRawFrame)
            assert audio and sum(len(f.audio) for f in audio) > 0
            assert voice.asked == [GREETING] and phrases.hits == 1  # not synthesized again
            # Anything else is still synthesized (here: once Piper is free again).
            await p.push(TTSSpeakFrame("Sure, one moment."))
            await asyncio.sleep(0)
            voice.go.set()
            await p.wait_for(lambda: len(p.down_of(TTSStoppedFrame)) >= 2, timeout=10)
            assert voice.asked == [GREETING, "Sure, one moment."]
    finally:
        voice.go.set()


async def test_the_process_prepares_the_greetings_before_it_serves(monkeypatch, voice_files):
    voice = ScriptedVoice()
    model, config = voice_files

    def loaded(*_args):
        future = piper_tts.concurrent.futures.Future()
        future.set_result(voice)
        return future

    monkeypatch.setattr(weights, "resolve_piper_voice", lambda _settings: (model, config))
    monkeypatch.setattr(piper_tts, "load_piper_voice", loaded)
    settings = Settings(stt="local", llm="local", tts="local", agent={"greeting": GREETING})
    resources = AgentResources(settings)
    await resources._load_piper(lambda _msg: None)
    assert voice.asked == fixed_phrases(settings)  # all synthesized while starting
    assert resources.piper_phrases.get(GREETING) is not None
