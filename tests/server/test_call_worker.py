"""The call's worker tells each observer only what it watches (caller audio reaches none of ours).

A call script: the caller's audio flows through two stages, then a transcript comes; a
timeline-style observer that watches transcripts must see the transcript once and no audio,
an observer that watches everything must see what pipecat's own worker shows it.
"""

import asyncio

from pipecat.frames.frames import EndFrame, Frame, InputAudioRawFrame, TranscriptionFrame
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from voiceagent.server.call_worker import CallWorker, WatchingObserver, WatchingWorkerObserver


class _Stage(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class _TranscriptWatcher(WatchingObserver):
    watched = (TranscriptionFrame,)

    def __init__(self) -> None:
        super().__init__(observe_every_push=False)
        self.pushed: list[Frame] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        self.pushed.append(data.frame)


class _Everything(BaseObserver):
    def __init__(self) -> None:
        super().__init__()
        self.pushed: list[Frame] = []
        self.processed = 0

    async def on_push_frame(self, data: FramePushed) -> None:
        self.pushed.append(data.frame)

    async def on_process_frame(self, data: FrameProcessed) -> None:
        self.processed += 1


def _caller_audio() -> InputAudioRawFrame:
    return InputAudioRawFrame(audio=b"\x00\x00" * 160, sample_rate=8000, num_channels=1)


async def _run_call(worker_class: type[PipelineWorker], observers: list[BaseObserver]) -> None:
    worker = worker_class(
        Pipeline([_Stage(), _Stage()]),
        cancel_on_idle_timeout=False,
        enable_rtvi=False,
        enable_turn_tracking=False,
        observers=observers,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    await worker.queue_frames(
        [
            _caller_audio(),
            _caller_audio(),
            TranscriptionFrame("book me in", "caller", "t"),
            EndFrame(),
        ]
    )
    await asyncio.wait_for(run, 10)
    await asyncio.sleep(0)  # observers are told through queues


def test_the_call_worker_uses_the_watching_proxy():
    worker = CallWorker(Pipeline([_Stage()]), enable_rtvi=False, observers=[_TranscriptWatcher()])
    assert isinstance(worker._observer, WatchingWorkerObserver)


async def test_caller_audio_never_reaches_a_transcript_watcher():
    watcher = _TranscriptWatcher()
    await _run_call(CallWorker, [watcher])
    assert [type(f) for f in watcher.pushed] == [TranscriptionFrame]


async def test_an_observer_of_everything_sees_what_pipecat_shows_it():
    ours, theirs = _Everything(), _Everything()
    await _run_call(CallWorker, [ours, _TranscriptWatcher()])
    await _run_call(PipelineWorker, [theirs])
    audio = [f for f in ours.pushed if isinstance(f, InputAudioRawFrame)]
    assert len(audio) == len([f for f in theirs.pushed if isinstance(f, InputAudioRawFrame)]) > 0
    assert [type(f).__name__ for f in ours.pushed] == [type(f).__name__ for f in theirs.pushed]
    assert ours.processed == theirs.processed > 0


async def test_processed_frames_are_not_queued_when_no_observer_reads_them():
    proxy = WatchingWorkerObserver(observers=[_TranscriptWatcher()])
    assert not proxy._process_watchers
    everything = _Everything()
    proxy.add_observer(everything)
    assert proxy._process_watchers == {id(everything)}
