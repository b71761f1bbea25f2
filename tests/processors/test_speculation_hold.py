"""SpeculationHold: a speculative reply is held until its turn is committed or discarded.

Most tests feed the hold directly (direct mode) in the orders frames can *arrive* in: the
Speculation* frames are SystemFrames and overtake queued data frames, so a verdict can come
before the first token or before the last one. The last tests run a real pipecat pipeline
with a slow data path so the overtaking really happens.
"""

from __future__ import annotations

import asyncio

import pytest
from pipecat.clocks.system_clock import SystemClock
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    StartFrame,
    SystemFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup
from pipecat.tests.utils import run_test
from pipecat.utils.asyncio.task_manager import TaskManager
from pipecat.workers.runner import WorkerRunner

from voiceagent.clock import ManualClock
from voiceagent.frames import (
    ResumeSpeechFrame,
    SpeculationCommitFrame,
    SpeculationDiscardFrame,
    SpeculationStartFrame,
)
from voiceagent.processors.agent_context import CallContext
from voiceagent.processors.sentence_aggregator import SentenceAggregator
from voiceagent.processors.speculation_hold import (
    GenerationTagFrame,
    ReplyDroppedFrame,
    SpeculationHold,
)
from voiceagent.processors.stability_router import StabilityCommitRouter

DOWN = FrameDirection.DOWNSTREAM


class _Sink(FrameProcessor):
    def __init__(self) -> None:
        super().__init__(enable_direct_mode=True)
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, StartFrame):
            self.frames.append(frame)


@pytest.fixture
async def hold():
    processor = SpeculationHold(enable_direct_mode=True)
    sink = _Sink()
    processor.link(sink)
    setup = FrameProcessorSetup(
        clock=SystemClock(), task_manager=TaskManager(), pipeline_worker=None
    )
    for p in (processor, sink):
        await p.setup(setup)
    await processor.queue_frame(StartFrame())

    async def feed(*frames: Frame) -> list[Frame]:
        for frame in frames:
            await processor.queue_frame(frame, DOWN)
        return sink.frames

    feed.processor = processor
    yield feed
    await processor.cleanup()
    await sink.cleanup()


def reply(*tokens: str) -> list[Frame]:
    return [
        LLMFullResponseStartFrame(),
        *(LLMTextFrame(t) for t in tokens),
        LLMFullResponseEndFrame(),
    ]


def spoken(frames: list[Frame]) -> list[str]:
    """What the rest of the pipeline would get as LLM output, as compact labels."""
    out = []
    for f in frames:
        if isinstance(f, LLMFullResponseStartFrame):
            out.append("<")
        elif isinstance(f, LLMTextFrame):
            out.append(f.text)
        elif isinstance(f, LLMFullResponseEndFrame):
            out.append(">")
        elif isinstance(f, ReplyDroppedFrame):
            out.append("dropped")
        elif not isinstance(f, SystemFrame):
            out.append(type(f).__name__)
    return out


async def test_held_until_commit_then_released_in_order(hold):
    out = await hold(
        SpeculationStartFrame(1, "book"), GenerationTagFrame(1, True), *reply("Sure", "!")
    )
    assert spoken(out) == []
    assert hold.processor.holding
    out = await hold(SpeculationCommitFrame(1))
    assert spoken(out) == ["<", "Sure", "!", ">"]
    assert not hold.processor.holding


async def test_commit_before_first_token_lets_reply_stream_live(hold):
    await hold(SpeculationStartFrame(1, "book"), SpeculationCommitFrame(1))
    out = await hold(GenerationTagFrame(1, True), LLMFullResponseStartFrame(), LLMTextFrame("Sure"))
    assert spoken(out) == ["<", "Sure"]


async def test_commit_mid_generation_releases_then_streams(hold):
    await hold(SpeculationStartFrame(1, "x"), GenerationTagFrame(1, True))
    out = await hold(LLMFullResponseStartFrame(), LLMTextFrame("Sure, "))
    assert spoken(out) == []
    out = await hold(
        SpeculationCommitFrame(1), LLMTextFrame("what day?"), LLMFullResponseEndFrame()
    )
    assert spoken(out) == ["<", "Sure, ", "what day?", ">"]


async def test_discard_before_last_tokens_drops_the_whole_generation(hold):
    await hold(SpeculationStartFrame(1, "x"), GenerationTagFrame(1, True))
    await hold(LLMFullResponseStartFrame(), LLMTextFrame("Sure"))
    await hold(SpeculationDiscardFrame(1))
    out = await hold(LLMTextFrame(" thing"), LLMFullResponseEndFrame())  # the cancelled tail
    assert spoken(out) == []
    out = await hold(GenerationTagFrame(2, False), *reply("For ", "Tuesday?"))
    assert spoken(out) == ["<", "For ", "Tuesday?", ">"]


async def test_discard_before_generation_started(hold):
    await hold(SpeculationStartFrame(1, "x"), SpeculationDiscardFrame(1))
    out = await hold(GenerationTagFrame(1, True), *reply("stale"))
    assert spoken(out) == []
    out = await hold(*reply("watchdog re-run"))  # an untagged generation is never held
    assert spoken(out) == ["<", "watchdog re-run", ">"]


async def test_discard_of_live_reply_closes_it_without_the_rest(hold):
    out = await hold(
        GenerationTagFrame(5, False), LLMFullResponseStartFrame(), LLMTextFrame("I can")
    )
    assert spoken(out) == ["<", "I can"]
    await hold(SpeculationDiscardFrame(5))  # the caller kept talking: regret
    out = await hold(LLMTextFrame(" book that."), LLMFullResponseEndFrame())
    assert spoken(out) == ["<", "I can", "dropped", ">"]


async def test_previous_generation_tail_is_not_held(hold):
    # The previous reply's tail is still queued when the next speculation overtakes it.
    await hold(GenerationTagFrame(1, False), LLMFullResponseStartFrame(), LLMTextFrame("Okay."))
    await hold(SpeculationStartFrame(2, "and"))
    out = await hold(LLMTextFrame(" Bye."), LLMFullResponseEndFrame())
    assert spoken(out) == ["<", "Okay.", " Bye.", ">"]
    out = await hold(GenerationTagFrame(2, True), *reply("held"))
    assert spoken(out) == ["<", "Okay.", " Bye.", ">"]


async def test_untagged_speculations_match_generations_in_order(hold):
    await hold(SpeculationStartFrame(1, "x"), *reply("first"))
    assert spoken(await hold()) == []
    out = await hold(SpeculationCommitFrame(1))
    assert spoken(out) == ["<", "first", ">"]


async def test_interruption_drops_held_output_and_stale_tail(hold):
    await hold(SpeculationStartFrame(1, "x"), GenerationTagFrame(1, True))
    await hold(LLMFullResponseStartFrame(), LLMTextFrame("Sure"))
    await hold(InterruptionFrame())
    out = await hold(LLMTextFrame("stale"), LLMFullResponseEndFrame(), SpeculationCommitFrame(1))
    assert spoken(out) == []
    out = await hold(GenerationTagFrame(2, False), *reply("new"))
    assert spoken(out) == ["<", "new", ">"]


async def test_frames_passing_by_survive_a_discard(hold):
    await hold(
        SpeculationStartFrame(1, "x"), GenerationTagFrame(1, True), LLMFullResponseStartFrame()
    )
    await hold(ResumeSpeechFrame(text="as I was saying"), SpeculationDiscardFrame(1))
    out = await hold(LLMTextFrame("dropped"), TTSSpeakFrame("Goodbye"))
    assert spoken(out) == ["ResumeSpeechFrame", "TTSSpeakFrame"]


async def test_system_and_end_frames_always_pass(hold):
    await hold(
        SpeculationStartFrame(1, "x"), GenerationTagFrame(1, True), LLMFullResponseStartFrame()
    )
    out = await hold(EndFrame())
    assert isinstance(out[-1], EndFrame)
    assert [type(f) for f in out if isinstance(f, SystemFrame)] == [SpeculationStartFrame]


class _SlowData(FrameProcessor):
    """Delays every non-system frame a little, so the system frames behind them overtake."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, SystemFrame):
            await asyncio.sleep(0.005)
        await self.push_frame(frame, direction)


def _pipeline_reply(turn_id: int) -> list[Frame]:
    return [GenerationTagFrame(turn_id, True), *reply("Sure, ", "what ", "day?")]


async def test_pipeline_commit_overtaking_the_tokens_still_releases_everything():
    frames = [SpeculationStartFrame(1, "x"), *_pipeline_reply(1), SpeculationCommitFrame(1)]
    down, _ = await run_test(Pipeline([_SlowData(), SpeculationHold()]), frames_to_send=frames)
    assert spoken(down) == ["<", "Sure, ", "what ", "day?", ">"]
    # The commit really overtook the reply (it was sent last).
    kinds = [type(f) for f in down]
    assert kinds.index(SpeculationCommitFrame) < kinds.index(LLMFullResponseEndFrame)


async def test_pipeline_discard_overtaking_the_tokens_still_drops_everything():
    frames = [
        SpeculationStartFrame(1, "x"),
        *_pipeline_reply(1),
        SpeculationDiscardFrame(1),
        GenerationTagFrame(2, False),
        *reply("For ", "Tuesday?"),
    ]
    down, _ = await run_test(Pipeline([_SlowData(), SpeculationHold()]), frames_to_send=frames)
    assert spoken(down) == ["<", "For ", "Tuesday?", ">"]


async def test_real_pipeline_caller_to_speakable_chunks(scripted_llm, recorder):
    """Caller → router → LLM → hold → aggregator with pipecat's queues: held, then spoken."""
    clock = ManualClock()
    context = CallContext("You are a receptionist.")
    router = StabilityCommitRouter(context, clock=clock)
    booking = ["I need to book", "I need to book a cleaning", *["I need to book a cleaning."] * 2]
    llm = scripted_llm(direct=False)
    sink = recorder(DOWN)
    worker = PipelineWorker(
        Pipeline([router, llm, SpeculationHold(), SentenceAggregator(), sink]),
        cancel_on_idle_timeout=False,
        enable_rtvi=False,
    )
    runner = WorkerRunner()
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())

    async def settle() -> None:  # lets the queues drain; no timing depends on it
        for _ in range(20):
            await asyncio.sleep(0.005)

    async def send(frame: Frame) -> None:
        await worker.queue_frame(frame)
        await settle()

    try:
        await settle()
        await send(VADUserStartedSpeakingFrame())
        for text in booking:
            await send(InterimTranscriptionFrame(text, "caller", ""))
            clock.advance(0.35)
        assert len(llm.requests) == 1
        assert not [f for f in sink.frames if isinstance(f, LLMFullResponseStartFrame)]  # held
        await send(VADUserStoppedSpeakingFrame())
        clock.advance(0.25)
        await settle()
        texts = [f.text for f in sink.frames if type(f).__name__ == "AggregatedTextFrame"]
        assert texts == ["Sure, what day works?"]
        assert router.stats.speculative_hits == 1 and len(llm.requests) == 1
    finally:
        await worker.queue_frame(EndFrame())
        try:
            await asyncio.wait_for(run, 5.0)
        except TimeoutError:
            run.cancel()
            raise
