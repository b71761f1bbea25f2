"""A caller talking to the real turn-taking chain: router → LLM (fake server) → hold.

``SpeculativeCall`` runs StabilityCommitRouter → VoiceLLMService → SpeculationHold in a real
pipecat PipelineWorker. The router's time comes from a ManualClock that only the script
moves; the LLM talks HTTP to the fake OpenAI server on 127.0.0.1. Recorders sit after the
router (to know a caller event was handled at the intended clock time), after the LLM
(what it generated) and after the hold (what would be spoken).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection

from voiceagent.clock import ManualClock
from voiceagent.processors.agent_context import CallContext
from voiceagent.processors.sentence_aggregator import SentenceAggregator
from voiceagent.processors.speculation_hold import SpeculationHold
from voiceagent.processors.stability_router import RouterParams, StabilityCommitRouter
from voiceagent.services.llm import VoiceLLMService, create_llm_service

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.harness import FrameRecorder, LivePipeline  # noqa: E402

SYSTEM = "You are the receptionist of a dental practice."
DOWN = FrameDirection.DOWNSTREAM


class SpeculativeCall:
    """``async with SpeculativeCall(base_url) as call:`` — say things, let time pass, look."""

    def __init__(
        self, base_url: str, params: RouterParams | None = None, *, speak: bool = False
    ) -> None:
        self.clock = ManualClock()
        self.context = CallContext()
        self.router = StabilityCommitRouter(self.context, params=params, clock=self.clock)
        self.llm: VoiceLLMService = create_llm_service(
            base_url=base_url,
            api_key=None,
            model="local",
            max_tokens=80,
            temperature=0.3,
            system_instruction=SYSTEM,
        )
        self.hold = SpeculationHold()
        self.after_router = FrameRecorder(DOWN)
        self.after_llm = FrameRecorder(DOWN)
        # speak=True adds the SentenceAggregator: what comes out is what the TTS would say.
        tail = [SentenceAggregator()] if speak else []
        chain = Pipeline(
            [self.router, self.after_router, self.llm, self.after_llm, self.hold, *tail]
        )
        self._live = LivePipeline(chain)

    async def __aenter__(self) -> SpeculativeCall:
        await self._live.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._live.__aexit__(*exc)

    # ----------------------------------------------------------------- the caller

    async def _send(self, frame: Frame) -> None:
        """Push a caller event and wait until the router has handled it (at the clock's now)."""
        await self._live.push(frame)
        await self._live.wait_for(
            lambda: any(f is frame for f in self.after_router.frames), 5, self.after_router
        )

    async def starts_talking(self) -> None:
        await self._send(VADUserStartedSpeakingFrame(start_secs=0.15))

    async def stops_talking(self) -> None:
        await self._send(VADUserStoppedSpeakingFrame(stop_secs=0.2))

    async def says(self, *partials: str, every: float = 0.1) -> None:
        """Partials of one utterance, ``every`` seconds of clock time apart."""
        for i, text in enumerate(partials):
            if i:
                await self.wait(every)
            await self._send(InterimTranscriptionFrame(text, "caller", ""))

    async def wait(self, seconds: float) -> None:
        """Let clock time pass (the router's timers fire) and its pushes run."""
        self.clock.advance(seconds)
        for _ in range(5):
            await asyncio.sleep(0)

    # --------------------------------------------------------------- observation

    async def until(self, predicate, timeout: float = 5.0, at: FrameRecorder | None = None):
        """Wait (bounded, real time) until ``predicate()`` holds."""
        await self._live.wait_for(predicate, timeout, at)

    def spoken(self, *types: type[Frame]) -> list[Frame]:
        """Frames that came out of the hold (what the caller would hear)."""
        return self._live.down_of(*types)

    def generated(self, *types: type[Frame]) -> list[Frame]:
        """Frames that came out of the LLM (before the hold)."""
        return [f for f in self.after_llm.frames if isinstance(f, types)]

    def spoken_text(self) -> str:
        return "".join(f.text for f in self.spoken(LLMTextFrame))

    def replies_ended(self) -> int:
        return len(self.spoken(LLMFullResponseEndFrame))
