"""Drive one processor in a real pipecat PipelineWorker with time from a ManualClock.

``Call`` sends frames either way, advances the clock and reads what came out at both ends.
Shared by the barge-in and watchdog tests.
"""

import asyncio
from dataclasses import dataclass

from pipecat.frames.frames import DataFrame, EndFrame, Frame, StartFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from voiceagent.clock import ManualClock

UP = FrameDirection.UPSTREAM
DOWN = FrameDirection.DOWNSTREAM


# -- harness: one processor between two recorders, a real PipelineWorker -------------------


@dataclass
class _Probe(DataFrame):
    """Sent after a step; once it comes out, everything before it was processed."""


class _Recorder(FrameProcessor):
    def __init__(self, direction: FrameDirection) -> None:
        super().__init__(enable_direct_mode=True)
        self._direction = direction
        self.frames: list[Frame] = []
        self.probes = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is self._direction:
            if isinstance(frame, _Probe):
                self.probes += 1
            elif not isinstance(frame, (StartFrame, EndFrame)):
                self.frames.append(frame)
        await self.push_frame(frame, direction)


class Call:
    """Drive one processor: send frames either way, advance the clock, read what came out."""

    def __init__(self, processor: FrameProcessor, clock: ManualClock) -> None:
        self.clock = clock
        self._up_end = _Recorder(UP)
        self._down_end = _Recorder(DOWN)
        self._worker = PipelineWorker(
            Pipeline([self._up_end, processor, self._down_end]),
            cancel_on_idle_timeout=False,
            enable_rtvi=False,
        )
        self._run: asyncio.Task | None = None

    @property
    def down(self) -> list[Frame]:
        return self._down_end.frames

    @property
    def up(self) -> list[Frame]:
        return self._up_end.frames

    async def __aenter__(self) -> "Call":
        started = asyncio.Event()

        @self._worker.event_handler("on_pipeline_started")
        async def _started(worker, frame):
            started.set()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self._worker)
        self._run = asyncio.create_task(runner.run())
        await asyncio.wait_for(started.wait(), 5)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._worker.queue_frame(EndFrame())
        await asyncio.wait_for(self._run, 5)

    async def send(self, *frames: Frame, direction: FrameDirection = DOWN) -> None:
        for frame in frames:
            await self._worker.queue_frame(frame, direction)
        await self.settle()

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.settle()

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)  # let timer-started tasks run
        down, up = self._down_end.probes, self._up_end.probes
        await self._worker.queue_frame(_Probe())
        await self._worker.queue_frame(_Probe(), UP)
        async with asyncio.timeout(5):
            while self._down_end.probes == down or self._up_end.probes == up:
                await asyncio.sleep(0.001)
