"""Run one processor in a live pipecat pipeline and watch the frames it pushes, as they come.

pipecat's ``run_test`` sends every frame up front; service tests need to act mid-stream
("after the third token, cancel"), so this harness keeps the pipeline running and records
downstream and upstream frames with their arrival times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from pipecat.frames.frames import EndFrame, Frame, StartFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner


class FrameRecorder(FrameProcessor):
    """Records the frames travelling in one direction, then forwards everything."""

    def __init__(self, direction: FrameDirection) -> None:
        super().__init__(enable_direct_mode=True)
        self._direction = direction
        self.frames: list[Frame] = []
        self.times: list[float] = []
        self.changed = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self._direction and not isinstance(frame, (StartFrame, EndFrame)):
            self.frames.append(frame)
            self.times.append(time.monotonic())
            self.changed.set()
        await self.push_frame(frame, direction)


class LivePipeline:
    """``async with LivePipeline(processor) as p: await p.push(frame); await p.wait_for(...)``."""

    def __init__(self, processor: FrameProcessor, *, sample_rate: int = 16000) -> None:
        self.up = FrameRecorder(FrameDirection.UPSTREAM)
        self.down = FrameRecorder(FrameDirection.DOWNSTREAM)
        pipeline = Pipeline([self.up, processor, self.down])
        self.worker = PipelineWorker(
            pipeline,
            cancel_on_idle_timeout=False,
            enable_rtvi=False,
            params=PipelineParams(
                audio_in_sample_rate=sample_rate, audio_out_sample_rate=sample_rate
            ),
        )
        self._runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LivePipeline:
        started = asyncio.Event()

        @self.worker.event_handler("on_pipeline_started")
        async def _started(worker: PipelineWorker, frame: Frame) -> None:
            started.set()

        await self._runner.add_workers(self.worker)
        self._task = asyncio.create_task(self._runner.run())
        await asyncio.wait_for(started.wait(), 20.0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        await self.worker.queue_frame(EndFrame())
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 10.0)
        except TimeoutError:
            await self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5.0)

    async def push(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        await self.worker.queue_frame(frame, direction)

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float,
        recorder: FrameRecorder | None = None,
    ) -> None:
        """Wait until ``predicate()`` holds (checked on every recorded frame), or fail."""
        recorder = recorder or self.down
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {timeout} s")
            recorder.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recorder.changed.wait(), remaining)

    def down_of(self, *types: type[Frame]) -> list[Frame]:
        return [f for f in self.down.frames if isinstance(f, types)]

    def up_of(self, *types: type[Frame]) -> list[Frame]:
        return [f for f in self.up.frames if isinstance(f, types)]


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition that no frame announces (e.g. a request reaching a fake), or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)
