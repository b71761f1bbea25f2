"""VoiceLLMService against a fake OpenAI-compatible SSE server (and, marked, the real local one).

Call scripts: the turn engine hands the LLM a committed caller turn; the agent's reply streams
out token by token. A speculative request's reply is held until the commit
(``UserStoppedSpeakingFrame``) releases it; when the engine withdraws it
(``EagerEndOfTurnCancelFrame``) the HTTP stream must close at once and nothing of it may come out.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    ErrorFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)

from voiceagent.services.llm import VoiceLLMService, create_llm_service
from voiceagent.settings import AgentSettings, LocalModelSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/services: shared fakes
from fakes.fake_openai import FakeOpenAIServer, FakeReply  # noqa: E402
from fakes.harness import LivePipeline, until  # noqa: E402
from fakes.llm_turns import caller_turn, dead_url, ended, reply_text  # noqa: E402

SYSTEM = AgentSettings().system_prompt


def llm_for(base_url: str, **kwargs) -> VoiceLLMService:
    return create_llm_service(
        base_url=base_url,
        api_key=None,
        model="local",
        max_tokens=80,
        temperature=0.3,
        system_instruction=SYSTEM,
        **kwargs,
    )


async def test_agent_reply_streams_start_tokens_end_in_order():
    tokens = ["Sure", ",", " we", " open", " at", " nine", "."]
    async with (
        FakeOpenAIServer(FakeReply(tokens=tokens)) as fake,
        LivePipeline(llm_for(fake.base_url)) as p,
    ):
        await p.push(caller_turn("When do you open tomorrow?"))
        await p.wait_for(ended(p), timeout=10)

        kinds = [
            type(f)
            for f in p.down_of(LLMFullResponseStartFrame, LLMTextFrame, LLMFullResponseEndFrame)
        ]
        assert kinds == [LLMFullResponseStartFrame] + [LLMTextFrame] * 7 + [LLMFullResponseEndFrame]
        assert reply_text(p) == "Sure, we open at nine."
        assert not p.up_of(ErrorFrame)

    request = fake.requests[0]
    assert request["stream"] is True
    assert request["model"] == "local"
    assert request["max_tokens"] == 80
    assert request["temperature"] == 0.3
    assert request["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "When do you open tomorrow?"},
    ]
    assert fake.completed_streams == 1


async def test_a_withdrawn_speculation_closes_the_stream_and_nothing_of_it_comes_out():
    # The caller pauses; the engine starts the LLM early on their words (50 ms per token),
    # then the caller goes on: the engine withdraws it. The server must see the client hang up.
    tokens = [f" word{i}" for i in range(60)]
    async with FakeOpenAIServer(FakeReply(tokens=tokens, token_delay_s=0.05)) as fake:
        llm = llm_for(fake.base_url)
        async with LivePipeline(llm) as p:
            await p.push(UserStartedSpeakingFrame())
            await p.push(caller_turn("Tell me everything about", speculation=True))
            await until(lambda: fake.tokens_sent >= 3)
            assert not p.down_of(LLMTextFrame)  # held: the turn is not over

            withdrawn_at = time.monotonic()
            await p.push(EagerEndOfTurnCancelFrame())
            await asyncio.wait_for(fake.client_gone.wait(), timeout=2.0)
            assert fake.client_gone_at is not None
            assert fake.client_gone_at - withdrawn_at < 0.5
            await asyncio.sleep(0.3)  # six more token periods of the fake server
            assert not p.down_of(LLMTextFrame)
            assert fake.completed_streams == 0
            assert not p.down_of(InterruptionFrame) and not p.up_of(InterruptionFrame)

            # The committed turn is answered in full.
            fake.reply = FakeReply(tokens=["Yes", "."])
            await p.push(UserStoppedSpeakingFrame())
            await p.push(caller_turn("Tell me everything about your opening hours."))
            await p.wait_for(ended(p), timeout=10)
            assert reply_text(p) == "Yes."
            assert fake.completed_streams == 1


async def test_the_commit_releases_a_held_speculation_in_order_then_it_streams_live():
    tokens = ["Sure", ",", " we", " open", " at", " eight", "."]
    async with (
        FakeOpenAIServer(FakeReply(tokens=tokens, token_delay_s=0.05)) as fake,
        LivePipeline(llm_for(fake.base_url)) as p,
    ):
        await p.push(UserStartedSpeakingFrame())
        await p.push(caller_turn("When do you open?", speculation=True))
        await until(lambda: fake.tokens_sent >= 3)
        assert not p.down_of(LLMTextFrame)
        await p.push(UserStoppedSpeakingFrame())  # the caller's turn is committed
        await p.wait_for(ended(p), timeout=10)
        assert reply_text(p) == "Sure, we open at eight."
        assert len(fake.requests) == 1  # no second request


async def test_a_withdrawal_also_drops_a_speculation_still_queued():
    # A committed reply is streaming; a speculation for the caller's next words waits behind
    # it; the caller goes on and the engine withdraws it before it ever ran.
    async with (
        FakeOpenAIServer(FakeReply(tokens=["a"] * 20, token_delay_s=0.05)) as fake,
        LivePipeline(llm := llm_for(fake.base_url)) as p,
    ):
        await p.push(caller_turn("First question?"))
        await p.push(UserStartedSpeakingFrame())
        await p.push(caller_turn("Second", speculation=True))
        await p.wait_for(lambda: len(p.down_of(LLMTextFrame)) >= 2, timeout=10)
        await p.push(EagerEndOfTurnCancelFrame())
        await p.wait_for(ended(p), timeout=10)
        await asyncio.sleep(0.3)
        assert len(fake.requests) == 1
        assert llm.withdrawn_queued == 1


async def test_an_interruption_mid_reply_closes_the_http_stream_and_stops_tokens():
    tokens = [f" word{i}" for i in range(60)]
    async with (
        FakeOpenAIServer(FakeReply(tokens=tokens, token_delay_s=0.05)) as fake,
        LivePipeline(llm_for(fake.base_url)) as p,
    ):
        await p.push(caller_turn("Tell me everything about your clinic."))
        await p.wait_for(lambda: len(p.down_of(LLMTextFrame)) >= 3, timeout=10)
        await p.push(InterruptionFrame())
        await asyncio.wait_for(fake.client_gone.wait(), timeout=2.0)
        texts = len(p.down_of(LLMTextFrame))
        await asyncio.sleep(0.3)
        assert len(p.down_of(LLMTextFrame)) == texts < 10
        assert fake.completed_streams == 0


async def test_a_withdrawal_with_nothing_running_is_harmless():
    async with (
        FakeOpenAIServer(FakeReply(tokens=["Hi", "."])) as fake,
        LivePipeline(llm_for(fake.base_url)) as p,
    ):
        await p.push(EagerEndOfTurnCancelFrame())
        await p.push(caller_turn("Hello?"))
        await p.wait_for(ended(p), timeout=10)
        assert reply_text(p) == "Hi."
        assert not p.up_of(ErrorFrame)


async def test_provider_http_500_yields_error_frame_and_pipeline_goes_on():
    async with (
        FakeOpenAIServer(FakeReply(status=500)) as fake,
        LivePipeline(llm_for(fake.base_url, max_retries=0)) as p,
    ):
        await p.push(caller_turn("Can I book a cleaning?"))
        await p.wait_for(lambda: bool(p.up_of(ErrorFrame)), timeout=10, recorder=p.up)
        await p.wait_for(ended(p), timeout=5)
        error = p.up_of(ErrorFrame)[0]
        assert "500" in error.error or "fake provider failure" in error.error
        assert not p.down_of(LLMTextFrame)

        fake.reply = FakeReply(tokens=["Of", " course", "."])
        await p.push(caller_turn("Can I book a cleaning?"))
        await p.wait_for(ended(p, 2), timeout=10)
        assert reply_text(p) == "Of course."


async def test_provider_unreachable_yields_error_frame():
    async with LivePipeline(llm_for(dead_url(), max_retries=0)) as p:
        await p.push(caller_turn("Hello?"))
        await p.wait_for(lambda: bool(p.up_of(ErrorFrame)), timeout=10, recorder=p.up)
        await p.wait_for(ended(p), timeout=5)
        assert "connection" in p.up_of(ErrorFrame)[0].error.lower()


def test_cloud_openai_without_key_is_a_clear_error():
    with pytest.raises(ValueError, match="API key"):
        create_llm_service(
            base_url=None, api_key=None, model="gpt-4o-mini", max_tokens=80, temperature=0.3
        )


def test_cloud_openai_gets_max_completion_tokens():
    llm = create_llm_service(
        base_url=None, api_key="sk-test", model="gpt-4o-mini", max_tokens=64, temperature=0.2
    )
    assert llm._settings.max_completion_tokens == 64
    assert llm._settings.model == "gpt-4o-mini"


@pytest.fixture(scope="module")
def gguf() -> Path:
    from voiceagent.services.local.weights import resolve_llm_gguf

    return resolve_llm_gguf(LocalModelSettings())


@pytest.mark.models
async def test_real_local_server_cancel_mid_reply_then_serves_next_turn(gguf: Path):
    from voiceagent.services.local.llama_server import LlamaServer

    async with LlamaServer(gguf) as server:
        await server.warm_up(SYSTEM)
        llm = create_llm_service(
            base_url=server.base_url,
            api_key=None,
            model=server.model_alias,
            max_tokens=200,
            temperature=0.3,
            system_instruction=SYSTEM,
        )
        async with LivePipeline(llm) as p:
            await p.push(caller_turn("Please describe, in detail, every service you offer."))
            await p.wait_for(lambda: len(p.down_of(LLMTextFrame)) >= 4, timeout=30)
            await p.push(InterruptionFrame())
            await asyncio.sleep(0.2)
            # llama.cpp's server notices the closed stream and stops generating.
            deadline = time.monotonic() + 3.0
            while not any("Disconnected from client" in line for line in server.recent_output()):
                assert time.monotonic() < deadline, "server never saw the client disconnect"
                await asyncio.sleep(0.05)
            texts = len(p.down_of(LLMTextFrame))
            await asyncio.sleep(0.5)  # ~20 token periods of the local model
            assert len(p.down_of(LLMTextFrame)) == texts

            started = time.monotonic()
            await p.push(caller_turn("What time do you open?"))
            await p.wait_for(lambda: len(p.down_of(LLMTextFrame)) > texts, timeout=30)
            ttft = time.monotonic() - started
            await p.wait_for(ended(p, 2), timeout=60)
            answer = "".join(f.text for f in p.down_of(LLMTextFrame)[texts:])
            assert answer.strip()
            assert not p.up_of(ErrorFrame)
            print(f"next-turn TTFT after cancel: {ttft:.3f} s; answer: {answer!r}")
