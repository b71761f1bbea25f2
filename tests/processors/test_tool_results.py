"""ToolResultRelay: committed results join the conversation; the LLM answers once with them.

The relay alone in a live pipeline; the LLM's side (calls started, results, cancels) is
pushed upstream by hand, the router's side (tags, requests, verdicts) downstream.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipecat.frames.frames import (
    FunctionCallFromLLM,
    FunctionCallResultFrame,
    FunctionCallResultProperties,
    FunctionCallsStartedFrame,
    InterruptionFrame,
    LLMContextFrame,
)
from pipecat.processors.frame_processor import FrameDirection

from voiceagent.frames import SpeculationCommitFrame
from voiceagent.processors.agent_context import CallContext
from voiceagent.processors.speculation_hold import GenerationTagFrame
from voiceagent.processors.tool_results import ToolResultRelay

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.harness import LivePipeline  # noqa: E402

UPSTREAM = FrameDirection.UPSTREAM


class Relay:
    def __init__(self, p: LivePipeline, context: CallContext, relay: ToolResultRelay):
        self.p, self.context, self.relay = p, context, relay

    async def request(self, turn_id: int, *, speculative: bool) -> LLMContextFrame:
        self.context.add_user("Book me Tuesday at 2 pm and tell me the price.")
        frame = LLMContextFrame(context=self.context.llm_context())
        await self.p.push(GenerationTagFrame(turn_id=turn_id, speculative=speculative))
        await self.p.push(frame)
        await self.p.wait_for(lambda: frame in self.p.down.frames, 5)
        return frame

    async def started(self, request: LLMContextFrame, *ids: str) -> None:
        calls = [
            FunctionCallFromLLM(
                function_name=f"tool_{i}", tool_call_id=i, arguments={}, context=request.context
            )
            for i in ids
        ]
        frame = FunctionCallsStartedFrame(function_calls=calls)
        await self.p.push(frame, UPSTREAM)
        await self.p.wait_for(lambda: frame in self.p.up.frames, 5, self.p.up)

    async def result(self, call_id: str, result: dict, *, run_llm: bool = True) -> None:
        frame = FunctionCallResultFrame(
            function_name=f"tool_{call_id}",
            tool_call_id=call_id,
            arguments={},
            result=result,
            properties=FunctionCallResultProperties(run_llm=run_llm),
        )
        await self.p.push(frame, UPSTREAM)
        await self.p.wait_for(lambda: frame in self.p.up.frames, 5, self.p.up)

    def follow_ups(self) -> list[LLMContextFrame]:
        frames = self.p.down_of(LLMContextFrame)
        return frames[1:]

    def roles(self) -> list[str]:
        return [m["role"] for m in self.context.messages]


async def relay_pipeline() -> tuple[LivePipeline, Relay]:
    context = CallContext()
    relay = ToolResultRelay(context)
    p = LivePipeline(relay)
    await p.__aenter__()
    return p, Relay(p, context, relay)


async def test_two_calls_of_one_turn_get_one_answer_with_both_results():
    p, r = await relay_pipeline()
    try:
        request = await r.request(1, speculative=False)
        await r.started(request, "a", "b")
        await r.result("a", {"booked": True})
        assert r.follow_ups() == [] and r.roles() == ["user"]  # "b" is still running
        await r.result("b", {"price_dollars": 120})
        await p.wait_for(lambda: len(r.follow_ups()) == 1, 5)
        assert r.roles() == ["user", "assistant", "tool", "tool"]
        [follow_up] = r.follow_ups()
        assert [m["role"] for m in follow_up.context.messages] == r.roles()
        tags = p.down_of(GenerationTagFrame)
        assert [(t.turn_id, t.speculative) for t in tags] == [(1, False), (1, False)]
    finally:
        await p.__aexit__(None, None, None)


async def test_a_booking_that_finishes_after_a_barge_in_joins_the_context_silently():
    p, r = await relay_pipeline()
    try:
        request = await r.request(1, speculative=True)
        await p.push(SpeculationCommitFrame(turn_id=1))
        await r.started(request, "book")
        await p.push(InterruptionFrame())  # the caller talks while the booking runs
        await r.result("book", {"booked": True, "confirmation_id": "BSD-0001"})
        await p.wait_for(lambda: len(r.context.messages) == 3, 5)
        assert r.roles() == ["user", "assistant", "tool"]
        assert r.follow_ups() == []  # the caller's next turn is answered with it instead
    finally:
        await p.__aexit__(None, None, None)


async def test_a_result_without_run_llm_is_kept_but_not_answered():
    p, r = await relay_pipeline()
    try:
        request = await r.request(3, speculative=False)
        await r.started(request, "end")
        await r.result("end", {"ending": True}, run_llm=False)
        await p.wait_for(lambda: len(r.context.messages) == 3, 5)
        assert r.follow_ups() == [] and r.relay.stats.follow_ups == 0
    finally:
        await p.__aexit__(None, None, None)
