"""Test-only stages for a cheap, deterministic agent: the real chain without model weights.

``CheapAgent`` is a pipeline factory: the builder's real chain (caller voice stage with its
sound onset, the turn engine, the real ``VoiceLLMService`` talking to the fake OpenAI server,
sentence aggregator) with three parts swapped: an energy VAD (caller tones are "speech"), a
scripted STT that "hears" given words for each caller utterance, and a TTS that speaks a tone
per character. The server records each call; the eval reads the record like any bot's.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams
from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TextAggregationMode, TTSService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from voiceagent.emulator.audio import write_wav
from voiceagent.pipelines.builder import build_call_processors
from voiceagent.pipelines.resources import AgentResources
from voiceagent.processors.caller_voice import CallerVoiceProcessor
from voiceagent.settings import PIPELINE_SAMPLE_RATE, Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.fake_openai import FakeOpenAIServer, FakeReply  # noqa: E402

__all__ = ["CheapAgent", "FakeOpenAIServer", "FakeReply", "cheap_settings", "tone_wav"]

VOICED_RMS = 500.0


def tone(seconds: float, hz: float, rate: int, amplitude: float = 9000.0) -> bytes:
    """A sine tone as PCM16 mono."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes()


def tone_wav(path: Path, seconds: float, hz: float = 300.0) -> Path:
    """A caller "line": a tone in an 8 kHz WAV."""
    write_wav(path, tone(seconds, hz, 8000), 8000)
    return path


class EnergyVAD(VADAnalyzer):
    """Speech is any 20 ms frame louder than ``VOICED_RMS`` (the emulator's silence is zero)."""

    def num_frames_required(self) -> int:
        return max(1, self.sample_rate // 50)

    def voice_confidence(self, buffer: bytes) -> float:
        samples = np.frombuffer(buffer, dtype="<i2").astype(np.float64)
        loud = samples.size and math.sqrt(float(np.mean(samples**2))) > VOICED_RMS
        return 1.0 if loud else 0.0


class ScriptedSTT(FrameProcessor):
    """Hears the next scripted words for each caller utterance: a partial at the VAD start,
    the final at the VAD stop."""

    def __init__(self, heard: list[str]) -> None:
        super().__init__()
        self._script = deque(heard)
        self._current: str | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, VADUserStartedSpeakingFrame) and self._current is None:
            self._current = self._script.popleft() if self._script else ""
            if self._current:
                await self.push_frame(
                    InterimTranscriptionFrame(self._current, "caller", time_now_iso8601())
                )
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._current is not None:
            text, self._current = self._current, None
            if text:
                await self.push_frame(
                    TranscriptionFrame(
                        text, "caller", time_now_iso8601(), language=Language.EN, finalized=True
                    )
                )


class ToneTTS(TTSService):
    """Speaks ``s_per_char`` of a 500 Hz tone per character, streamed a little ahead of time."""

    def __init__(self, *, s_per_char: float = 0.02, **kwargs: Any) -> None:
        kwargs.setdefault("push_start_frame", True)
        kwargs.setdefault("push_stop_frames", True)
        kwargs.setdefault("text_aggregation_mode", TextAggregationMode.SENTENCE)
        kwargs.setdefault("sample_rate", PIPELINE_SAMPLE_RATE)
        kwargs.setdefault("settings", TTSSettings(model=None, voice="tone", language=None))
        super().__init__(**kwargs)
        self._s_per_char = s_per_char

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        async for frame in self._stream_audio_frames_from_iterator(
            self._audio(text), in_sample_rate=self.sample_rate, context_id=context_id
        ):
            yield frame

    async def _audio(self, text: str) -> AsyncIterator[bytes]:
        pcm = tone(max(0.04, len(text.strip()) * self._s_per_char), 500.0, self.sample_rate)
        step = self.sample_rate // 25 * 2  # 40 ms
        started = time.monotonic()
        for n, offset in enumerate(range(0, len(pcm), step)):
            await asyncio.sleep(max(0.0, started + n * 0.01 - time.monotonic()))
            yield pcm[offset : offset + step]


def cheap_settings(llm_base_url: str, greeting: str) -> Settings:
    """Loopback server, the LLM stage on the fake OpenAI server, a short greeting."""
    return Settings(
        server={"host": "127.0.0.1", "port": 0, "twilio_auth_token": None, "shutdown_grace_s": 1.0},
        cloud={"openai_base_url": llm_base_url, "openai_api_key": "test", "openai_model": "fake"},
        agent={"greeting": greeting},
        llm="openai",
        fallback={"llm": []},  # the local server is not started here
    )


@dataclass
class CheapAgent:
    """Pipeline factory of the cheap agent; ``heard`` is what the STT hears, per utterance."""

    heard: list[str]

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        vad_params = VADParams(confidence=0.5, start_secs=0.1, stop_secs=0.2, min_volume=0.0)
        processors, _ = build_call_processors(
            settings,
            AgentResources(settings),  # not started: no model is used
            overrides={
                "voice": lambda parts: CallerVoiceProcessor(
                    parts.settings.turns.voice, vad_analyzer=EnergyVAD(params=vad_params)
                ),
                "stt": lambda parts: ScriptedSTT(list(self.heard)),
                "tts": lambda parts: ToneTTS(),
            },
        )
        return processors
