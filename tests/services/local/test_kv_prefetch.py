"""KV prefetch: once the caller heard the agent, the local LLM evaluates the conversation."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

from voiceagent.frames import ConversationUpdatedFrame
from voiceagent.services.llm import create_llm_service
from voiceagent.turns.conversation import Conversation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.fake_openai import FakeOpenAIServer  # noqa: E402
from fakes.harness import LivePipeline  # noqa: E402

SYSTEM = "You are the receptionist of Bright Smile Dental."


async def until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def local_llm(base_url: str):
    return create_llm_service(
        base_url=base_url,
        api_key=None,
        model="qwen",
        max_tokens=80,
        temperature=0.3,
        system_instruction=SYSTEM,
        prefetch=True,
    )


async def test_the_heard_reply_is_evaluated_while_the_caller_talks():
    conversation = Conversation()
    async with FakeOpenAIServer() as server:
        llm = local_llm(server.base_url)
        async with LivePipeline(llm) as p:
            # Caller: "How much is a cleaning?" — the agent answers, the caller hears it all.
            conversation.add_user(1, "How much is a cleaning?")
            conversation.add_agent_heard("A cleaning is 120 dollars.")
            await p.push(ConversationUpdatedFrame(conversation.llm_context()))
            await until(lambda: llm._prefetcher.prefetches == 1)
    [request] = server.requests
    assert request["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "How much is a cleaning?"},
        {"role": "assistant", "content": "A cleaning is 120 dollars."},
    ]
    assert (request["max_tokens"], request["stream"], request["model"]) == (1, False, "qwen")


async def test_tools_offered_means_no_prefetch():
    hours = FunctionSchema(name="hours", description="Opening hours.", properties={}, required=[])
    conversation = Conversation(tools=ToolsSchema(standard_tools=[hours]))
    conversation.add_agent_heard("Sure.")
    async with FakeOpenAIServer() as server:
        llm = local_llm(server.base_url)
        async with LivePipeline(llm) as p:
            await p.push(ConversationUpdatedFrame(conversation.llm_context()))
            await asyncio.sleep(0.1)
    assert server.requests == [] and llm._prefetcher.prefetches == 0


async def test_a_server_that_is_down_costs_one_log_line_and_the_call_goes_on():
    conversation = Conversation()
    conversation.add_agent_heard("Hello, how can I help?")
    llm = local_llm("http://127.0.0.1:9")
    async with LivePipeline(llm) as p:
        for turn in (1, 2):
            await p.push(ConversationUpdatedFrame(conversation.llm_context()))
            await until(lambda t=turn: llm._prefetcher.failures == t)


async def test_a_conversation_update_after_the_call_was_cleaned_up_opens_no_session():
    """The call ends (the LLM's cleanup closes the prefetcher); an update still in flight
    arrives: no prefetch, and no HTTP session left for the garbage collector."""
    conversation = Conversation()
    conversation.add_agent_heard("Goodbye!")
    async with FakeOpenAIServer() as server:
        llm = local_llm(server.base_url)
        async with LivePipeline(llm) as p:
            await p.push(ConversationUpdatedFrame(conversation.llm_context()))
            await until(lambda: llm._prefetcher.prefetches == 1)
        prefetcher = llm._prefetcher
        prefetcher.schedule(conversation.llm_context().messages)
        await asyncio.sleep(0.05)
    assert prefetcher._task is None and prefetcher._session is None
    assert len(server.requests) == 1
