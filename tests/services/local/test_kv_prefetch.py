"""KVPrefetch: once the caller heard the agent, the local LLM evaluates the conversation."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

from voiceagent.clock import ManualClock
from voiceagent.frames import AgentHeardFrame
from voiceagent.processors.agent_context import CallContext
from voiceagent.services.local.kv_prefetch import KVPrefetch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "processors"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from clocked_pipeline import UP, Call  # noqa: E402
from fakes.fake_openai import FakeOpenAIServer  # noqa: E402

SYSTEM = "You are the receptionist of Bright Smile Dental."


async def until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_the_heard_reply_is_evaluated_while_the_caller_talks():
    context = CallContext()
    async with FakeOpenAIServer() as server:
        prefetch = KVPrefetch(context, base_url=server.base_url, model="qwen", system_prompt=SYSTEM)
        async with Call(prefetch, ManualClock()) as call:
            # Caller: "How much is a cleaning?" — the agent answers, the caller hears it all.
            context.add_user("How much is a cleaning?")
            context.add_agent_heard("A cleaning is 120 dollars.")
            heard = AgentHeardFrame(turn_id=1, text="A cleaning is 120 dollars.")
            await call.send(heard, direction=UP)
            await until(lambda: prefetch.prefetches == 1)
            assert call.up == [heard]  # passed on untouched
    [request] = server.requests
    assert request["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "How much is a cleaning?"},
        {"role": "assistant", "content": "A cleaning is 120 dollars."},
    ]
    assert (request["max_tokens"], request["stream"], request["model"]) == (1, False, "qwen")


async def test_nothing_heard_or_tools_offered_means_no_prefetch():
    context = CallContext(tools=ToolsSchema(standard_tools=[]))
    async with FakeOpenAIServer() as server:
        prefetch = KVPrefetch(context, base_url=server.base_url, model="qwen", system_prompt=SYSTEM)
        async with Call(prefetch, ManualClock()) as call:
            await call.send(AgentHeardFrame(turn_id=1, text="Sure."), direction=UP)
            context.tools = None
            await call.send(AgentHeardFrame(turn_id=2, text="", full_text="Hi"), direction=UP)
            await asyncio.sleep(0.1)
    assert server.requests == [] and prefetch.prefetches == 0


async def test_a_server_that_is_down_costs_one_log_line_and_the_call_goes_on():
    context = CallContext()
    context.add_agent_heard("Hello, how can I help?")
    prefetch = KVPrefetch(context, base_url="http://127.0.0.1:9", model="q", system_prompt=None)
    async with Call(prefetch, ManualClock()) as call:
        for turn in (1, 2):
            await call.send(AgentHeardFrame(turn_id=turn, text="Hello."), direction=UP)
            await until(lambda t=turn: prefetch.failures == t)
        assert len(call.up) == 2
