"""EndOfTurnDetector: the caller pauses, the model says whether they sound done."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from clocked_pipeline import Call
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, EndOfTurnState
from pipecat.frames.frames import (
    InputAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TurnMetricsData

from voiceagent.clock import ManualClock
from voiceagent.frames import EndOfTurnFrame
from voiceagent.processors.end_of_turn import EndOfTurnDetector, smart_turn_analyzer
from voiceagent.settings import PIPELINE_SAMPLE_RATE

FRAME = b"\x10\x00" * (PIPELINE_SAMPLE_RATE // 50)  # 20 ms of quiet speech-like PCM16


class ScriptedAnalyzer(BaseTurnAnalyzer):
    """Says what the test tells it; counts the audio it was given."""

    def __init__(self, verdicts: list[tuple[bool, float]]) -> None:
        super().__init__(sample_rate=PIPELINE_SAMPLE_RATE)
        self.verdicts = verdicts
        self.speech_bytes = 0
        self.silence_bytes = 0
        self.gate: asyncio.Event | None = None

    @property
    def speech_triggered(self) -> bool:
        return self.speech_bytes > 0

    @property
    def params(self):
        return None

    def append_audio(self, buffer: bytes, is_speech: bool) -> EndOfTurnState:
        if is_speech:
            self.speech_bytes += len(buffer)
        else:
            self.silence_bytes += len(buffer)
        return EndOfTurnState.INCOMPLETE

    async def analyze_end_of_turn(self):
        if self.gate is not None:
            await self.gate.wait()
        complete, p = self.verdicts.pop(0)
        state = EndOfTurnState.COMPLETE if complete else EndOfTurnState.INCOMPLETE
        return state, TurnMetricsData(
            processor="scripted", is_complete=complete, probability=p, e2e_processing_time_ms=1.0
        )

    def clear(self) -> None:
        self.speech_bytes = self.silence_bytes = 0

    def update_vad_start_secs(self, vad_start_secs: float) -> None:
        pass


def audio(n: int) -> list[InputAudioRawFrame]:
    return [InputAudioRawFrame(FRAME, PIPELINE_SAMPLE_RATE, 1) for _ in range(n)]


async def ready(detector: EndOfTurnDetector) -> None:
    async with asyncio.timeout(5):
        while not detector.ready:
            await asyncio.sleep(0.001)


async def test_caller_pauses_and_the_verdict_goes_downstream():
    analyzer = ScriptedAnalyzer([(False, 0.12), (True, 0.93)])
    detector = EndOfTurnDetector(lambda: analyzer)
    async with Call(detector, ManualClock()) as call:
        await ready(detector)
        # Caller: "Do you have anything open next Wednesday," (pause)
        await call.send(VADUserStartedSpeakingFrame(), *audio(10), VADUserStoppedSpeakingFrame())
        await call.send(*audio(2))
        verdicts = [f for f in call.down if isinstance(f, EndOfTurnFrame)]
        assert [(v.complete, v.probability) for v in verdicts] == [(False, 0.12)]
        # "... maybe in the morning?" (pause): sounds done.
        await call.send(VADUserStartedSpeakingFrame(), *audio(5), VADUserStoppedSpeakingFrame())
        await call.send(*audio(1))
        verdicts = [f for f in call.down if isinstance(f, EndOfTurnFrame)]
        assert [v.complete for v in verdicts] == [False, True]
        # Every audio frame passed on, and the model heard speech and silence apart.
        assert sum(isinstance(f, InputAudioRawFrame) for f in call.down) == 18
        assert analyzer.speech_bytes == 15 * len(FRAME)
        assert analyzer.silence_bytes == 3 * len(FRAME)


async def test_a_verdict_that_arrives_after_the_caller_resumed_is_dropped():
    analyzer = ScriptedAnalyzer([(True, 0.9)])
    analyzer.gate = asyncio.Event()
    detector = EndOfTurnDetector(lambda: analyzer)
    async with Call(detector, ManualClock()) as call:
        await ready(detector)
        await call.send(VADUserStartedSpeakingFrame(), *audio(5), VADUserStoppedSpeakingFrame())
        await call.send(VADUserStartedSpeakingFrame())  # resumed while the model listened
        analyzer.gate.set()
        await call.send(*audio(3))
        assert not [f for f in call.down if isinstance(f, EndOfTurnFrame)]


async def test_a_model_that_cannot_load_leaves_the_call_running():
    def broken() -> BaseTurnAnalyzer:
        raise RuntimeError("onnx file missing")

    detector = EndOfTurnDetector(broken)
    async with Call(detector, ManualClock()) as call:
        for _ in range(100):
            await asyncio.sleep(0.001)
        await call.send(VADUserStartedSpeakingFrame(), *audio(3), VADUserStoppedSpeakingFrame())
        assert not detector.ready
        assert sum(isinstance(f, InputAudioRawFrame) for f in call.down) == 3
        assert not [f for f in call.down if isinstance(f, EndOfTurnFrame)]


@pytest.mark.models
def test_the_bundled_model_hears_an_unfinished_sentence():
    pytest.importorskip("piper")
    import soxr
    from piper import PiperVoice

    from voiceagent.services.local.weights import resolve_piper_voice
    from voiceagent.settings import LocalModelSettings

    model, config = resolve_piper_voice(LocalModelSettings())
    voice = PiperVoice.load(str(model), config_path=str(config))
    analyzer = smart_turn_analyzer()
    analyzer.set_sample_rate(PIPELINE_SAMPLE_RATE)

    def probability(text: str) -> float:
        pcm = np.concatenate([c.audio_int16_array for c in voice.synthesize(text)])
        pcm = soxr.resample(pcm.astype(np.float32) / 32768, voice.config.sample_rate, 16000)
        pcm = np.concatenate([pcm, np.zeros(3200, np.float32)])  # + the VAD's 0.2 s of silence
        return analyzer._predict_endpoint(pcm)["probability"]

    assert probability("What time do you close on Fridays?") > 0.8
    assert probability("I'd like to book a cleaning for my son and") < 0.2
