"""Harness for the turn-taking processors: a router between recorders, on a ManualClock.

The processors run in pipecat's direct mode, so each frame is handled before ``send``
returns; time moves only when a test advances the clock (timers fire inside ``advance``).
"""

from __future__ import annotations

import asyncio

import pytest
from pipecat.clocks.system_clock import SystemClock
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    StartFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup
from pipecat.utils.asyncio.task_manager import TaskManager

from voiceagent.clock import ManualClock
from voiceagent.processors.agent_context import CallContext
from voiceagent.processors.speculation_hold import SpeculationHold
from voiceagent.processors.stability_router import RouterParams, StabilityCommitRouter

UP = FrameDirection.UPSTREAM
DOWN = FrameDirection.DOWNSTREAM
SYSTEM = "You are the receptionist of a dental practice."


class _Recorder(FrameProcessor):
    """End of the chain: records what reaches it in one direction."""

    def __init__(self, direction: FrameDirection) -> None:
        super().__init__(enable_direct_mode=True)
        self._direction = direction
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is self._direction and not isinstance(frame, (StartFrame, EndFrame)):
            self.frames.append(frame)
        await self.push_frame(frame, direction)  # a no-op at either end of the chain


class _ScriptedLLM(FrameProcessor):
    """A fake LLM: answers every LLMContextFrame at once with a fixed reply, in three tokens."""

    def __init__(self, *, direct: bool = True) -> None:
        super().__init__(enable_direct_mode=direct)
        self.requests: list[list[dict]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            self.requests.append(list(frame.context.get_messages()))
            await self.push_frame(LLMFullResponseStartFrame())
            for token in ("Sure, ", "what day ", "works?"):
                await self.push_frame(LLMTextFrame(token))
            await self.push_frame(LLMFullResponseEndFrame())
            return
        await self.push_frame(frame, direction)


class Call:
    """One caller talking to the router: send frames, let time pass, read what came out."""

    def __init__(self, params: RouterParams | None = None, *, with_llm: bool = False) -> None:
        self.clock = ManualClock()
        self.context = CallContext(SYSTEM)
        self.router = StabilityCommitRouter(
            self.context, params=params, clock=self.clock, enable_direct_mode=True
        )
        self.llm = _ScriptedLLM() if with_llm else None
        self.hold = SpeculationHold(enable_direct_mode=True) if with_llm else None
        self._up = _Recorder(UP)
        self._down = _Recorder(DOWN)
        middle = [p for p in (self.llm, self.hold) if p is not None]
        self._chain: list[FrameProcessor] = [self._up, self.router, *middle, self._down]
        for a, b in zip(self._chain, self._chain[1:], strict=False):
            a.link(b)

    async def start(self) -> None:
        setup = FrameProcessorSetup(
            clock=SystemClock(), task_manager=TaskManager(), pipeline_worker=None
        )
        for processor in self._chain:
            await processor.setup(setup)
        await self.router.queue_frame(StartFrame())

    async def stop(self) -> None:
        for processor in self._chain:
            await processor.cleanup()

    @property
    def down(self) -> list[Frame]:
        return self._down.frames

    def of(self, cls: type) -> list:
        return [f for f in self.down if isinstance(f, cls)]

    async def send(self, frame: Frame, direction: FrameDirection = DOWN) -> None:
        await self.router.queue_frame(frame, direction)

    async def says(self, *partials: str, every: float = 0.35) -> None:
        """Partials of one utterance, ``every`` seconds apart (the first one right away)."""
        for i, text in enumerate(partials):
            if i:
                await self.wait(every)
            await self.send(InterimTranscriptionFrame(text, "caller", ""))

    async def final(self, text: str) -> None:
        await self.send(TranscriptionFrame(text, "caller", "", finalized=True))

    async def starts_talking(self) -> None:
        await self.send(VADUserStartedSpeakingFrame(start_secs=0.15))

    async def stops_talking(self) -> None:
        await self.send(VADUserStoppedSpeakingFrame(stop_secs=0.2))

    async def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        for _ in range(5):  # let the timer's push task run (no time passes)
            await asyncio.sleep(0)

    def user_messages(self) -> list[str]:
        return [m["content"] for m in self.context.messages if m["role"] == "user"]


@pytest.fixture
async def call_factory():
    calls: list[Call] = []

    async def make(params: RouterParams | None = None, **kwargs) -> Call:
        call = Call(params, **kwargs)
        await call.start()
        calls.append(call)
        return call

    yield make
    for call in calls:
        await call.stop()


@pytest.fixture
def recorder():
    """Make a recorder of the frames reaching it in one direction."""
    return _Recorder


@pytest.fixture
def scripted_llm():
    """Make a fake LLM that answers each request with a fixed three-token reply."""
    return _ScriptedLLM
