"""Acoustic end-of-turn evidence: pipecat's Smart Turn model heard at every VAD stop.

Text cannot always tell "anything open next Wednesday" (done) from the same words said with
a rising, unfinished intonation; the voice can. At each VAD stop this processor asks
pipecat's bundled Smart Turn v3 model (``LocalSmartTurnAnalyzerV3``: ONNX on the CPU, ≈ 75 ms
on the analyzer's own thread, never on the event loop) whether the caller's audio since the
turn began sounds finished, and pushes an ``EndOfTurnFrame`` downstream. The
turn engine then waits longer for a caller who sounds unfinished, as it does for
"and" or "my number is". A verdict that arrives after the caller resumed is dropped.

The model is loaded per call in a worker thread when the call starts; until it is ready (or
if it fails) no verdict is sent and the engine decides on text and silence alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from loguru import logger
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, EndOfTurnState
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    StartFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.frames import EndOfTurnFrame
from voiceagent.settings import PIPELINE_SAMPLE_RATE

AnalyzerFactory = Callable[[], BaseTurnAnalyzer]

CLEAR_AFTER_S = 3.0
"""Silence after which the analyzer forgets the turn's audio (the engine has committed by then)."""


def smart_turn_analyzer(sample_rate: int = PIPELINE_SAMPLE_RATE) -> BaseTurnAnalyzer:
    """Pipecat's bundled Smart Turn v3 model (blocking load, ≈ 60 ms: call it in a thread)."""
    from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    return LocalSmartTurnAnalyzerV3(
        sample_rate=sample_rate, params=SmartTurnParams(stop_secs=CLEAR_AFTER_S)
    )


class EndOfTurnDetector(FrameProcessor):
    """Runs an end-of-turn model at each VAD stop; forwards every frame untouched."""

    def __init__(self, analyzer_factory: AnalyzerFactory = smart_turn_analyzer, **kwargs) -> None:
        super().__init__(**kwargs)
        self._factory = analyzer_factory
        self._analyzer: BaseTurnAnalyzer | None = None
        self._loading: asyncio.Task | None = None
        self._speaking = False
        self._utterance = 0  # VAD starts so far: a verdict for an older one is stale
        self._failed = False

    @property
    def ready(self) -> bool:
        """Whether the model is loaded and verdicts will be sent."""
        return self._analyzer is not None and not self._failed

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Feed caller audio to the analyzer; ask it for a verdict at each VAD stop."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            return
        analyzer = self._analyzer
        if isinstance(frame, InputAudioRawFrame):
            if analyzer is not None and not self._failed:
                analyzer.append_audio(frame.audio, self._speaking)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._speaking = True
            self._utterance += 1
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speaking = False
            if analyzer is not None and not self._failed:
                self.create_task(self._judge(analyzer, self._utterance), name=f"{self}::judge")
        elif isinstance(frame, StartFrame) and self._loading is None:
            self._loading = self.create_task(self._load(), name=f"{self}::load")
        elif isinstance(frame, EndFrame | CancelFrame):
            await self._release()

    async def _load(self) -> None:
        try:
            analyzer = await asyncio.to_thread(self._factory)
            analyzer.set_sample_rate(PIPELINE_SAMPLE_RATE)
        except Exception as e:
            self._failed = True
            logger.warning(f"{self}: end-of-turn model unavailable ({e}); text and silence only")
            return
        self._analyzer = analyzer

    async def _judge(self, analyzer: BaseTurnAnalyzer, utterance: int) -> None:
        try:
            state, metrics = await analyzer.analyze_end_of_turn()
        except Exception as e:
            self._failed = True
            logger.warning(f"{self}: end-of-turn model failed ({e}); text and silence only")
            return
        if utterance != self._utterance or self._speaking:
            return  # the caller resumed while the model listened
        probability = getattr(metrics, "probability", None)
        inference_ms = getattr(metrics, "e2e_processing_time_ms", None)
        complete = state is EndOfTurnState.COMPLETE
        logger.debug(f"{self}: end of turn {complete} (p={probability})")
        await self.push_frame(
            EndOfTurnFrame(complete=complete, probability=probability, inference_ms=inference_ms)
        )

    async def _release(self) -> None:
        analyzer, self._analyzer = self._analyzer, None
        if analyzer is not None:
            try:
                await analyzer.cleanup()
            except Exception as e:  # teardown must not break the call's end
                logger.debug(f"{self}: analyzer cleanup failed: {e}")

    async def cleanup(self) -> None:
        """Release the model's thread."""
        await self._release()
        await super().cleanup()
