"""LLM fallback: an outage of the primary re-runs the same generation on the next LLM."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

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

from voiceagent.clock import ManualClock
from voiceagent.processors.fallback_stages import LLMFallback
from voiceagent.services.llm import create_llm_service

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/services: shared fakes
from fakes.fake_openai import FakeOpenAIServer, FakeReply  # noqa: E402
from fakes.harness import LivePipeline, until  # noqa: E402
from fakes.llm_turns import caller_turn, dead_url, ended, reply_text  # noqa: E402

APOLOGY = "Sorry, I'm having trouble right now."
REPLY = FakeReply(tokens=["We", " open", " at", " nine", "."])


def llm_at(base_url: str):
    return create_llm_service(
        base_url=base_url,
        api_key=None,
        model="fake",
        max_tokens=40,
        temperature=0.3,
        system_instruction="You are a receptionist.",
        max_retries=0,
    )


def switcher_of(*urls: str, clock: ManualClock) -> LLMFallback:
    return LLMFallback(
        [llm_at(u) for u in urls],
        first_token_timeout_s=3.0,
        apology_text=APOLOGY,
        clock=clock,
    )


def reply_of(pipe: LivePipeline) -> tuple[list[type], str]:
    frames = pipe.down_of(LLMFullResponseStartFrame, LLMTextFrame, LLMFullResponseEndFrame)
    kinds = [type(f) for f in frames if not isinstance(f, LLMTextFrame)]
    return kinds, reply_text(pipe)


async def test_a_5xx_from_the_primary_is_answered_by_the_next_llm():
    clock = ManualClock()
    async with (
        FakeOpenAIServer(FakeReply(status=503)) as primary,
        FakeOpenAIServer(REPLY) as backup,
    ):
        switcher = switcher_of(primary.base_url, backup.base_url, clock=clock)
        async with LivePipeline(switcher) as pipe:
            await pipe.push(caller_turn("When do you open?"))
            await pipe.wait_for(ended(pipe), 10.0)
            await asyncio.sleep(0.1)
    assert len(primary.requests) == 1 and len(backup.requests) == 1
    assert backup.requests[0]["messages"] == primary.requests[0]["messages"]  # same generation
    assert reply_of(pipe) == (
        [LLMFullResponseStartFrame, LLMFullResponseEndFrame],
        "We open at nine.",
    )
    assert switcher.retries == 1 and switcher.stats.switches == 1
    assert not pipe.up_of(ErrorFrame)


async def test_connection_refused_is_answered_by_the_next_llm():
    clock = ManualClock()
    async with FakeOpenAIServer(REPLY) as backup:
        dead = dead_url()
        switcher = switcher_of(dead, backup.base_url, clock=clock)
        async with LivePipeline(switcher) as pipe:
            await pipe.push(caller_turn("Where are you?"))
            await pipe.wait_for(ended(pipe), 10.0)
    assert reply_of(pipe)[1] == "We open at nine."
    assert backup.requests[0]["messages"][-1] == {"role": "user", "content": "Where are you?"}
    assert "Connection error" in switcher.stats.reasons[0]


async def test_no_first_token_in_time_cancels_the_primary_and_retries():
    clock = ManualClock()
    slow = FakeReply(tokens=["Too", " late"], token_delay_s=1.5)
    async with FakeOpenAIServer(slow) as primary, FakeOpenAIServer(REPLY) as backup:
        switcher = switcher_of(primary.base_url, backup.base_url, clock=clock)
        async with LivePipeline(switcher) as pipe:
            await pipe.push(caller_turn("Are you open on Friday?"))
            await until(lambda: primary.requests, 5.0)
            clock.advance(2.9)
            await asyncio.sleep(0.1)
            assert not backup.requests
            clock.advance(0.2)
            await pipe.wait_for(ended(pipe), 10.0)
            await asyncio.wait_for(primary.client_gone.wait(), 3.0)  # its stream was closed
    assert primary.tokens_sent == 0
    assert reply_of(pipe) == (
        [LLMFullResponseStartFrame, LLMFullResponseEndFrame],
        "We open at nine.",
    )
    assert "no first token within 3 s" in switcher.stats.reasons[0]
    assert not pipe.down_of(InterruptionFrame)  # the switcher's own cancel stays inside


async def test_when_every_llm_fails_the_agent_apologizes():
    clock = ManualClock()
    async with (
        FakeOpenAIServer(FakeReply(status=500)) as primary,
        FakeOpenAIServer(FakeReply(status=502)) as backup,
    ):
        switcher = switcher_of(primary.base_url, backup.base_url, clock=clock)
        async with LivePipeline(switcher) as pipe:
            await pipe.push(caller_turn("Can I book a cleaning?"))
            await pipe.wait_for(ended(pipe), 10.0)
            await asyncio.sleep(0.2)
    assert len(primary.requests) == 1 and len(backup.requests) == 1
    assert reply_of(pipe) == ([LLMFullResponseStartFrame, LLMFullResponseEndFrame], APOLOGY)
    assert switcher.apologies == 1
    assert not pipe.up_of(ErrorFrame)  # answered with the apology, not dead air


async def test_a_healthy_primary_answers_and_the_next_llm_is_not_asked():
    clock = ManualClock()
    async with FakeOpenAIServer(REPLY) as primary, FakeOpenAIServer(REPLY) as backup:
        switcher = switcher_of(primary.base_url, backup.base_url, clock=clock)
        async with LivePipeline(switcher) as pipe:
            await pipe.push(caller_turn("When do you open?"))
            await pipe.wait_for(ended(pipe), 10.0)
            clock.advance(10.0)
            await asyncio.sleep(0.1)
    assert len(primary.requests) == 1 and not backup.requests
    assert reply_of(pipe)[1] == "We open at nine."
    assert switcher.stats.switches == 0 and switcher.retries == 0


async def test_a_cancelled_generation_is_not_retried():
    clock = ManualClock()
    slow = FakeReply(tokens=["Hmm"], token_delay_s=1.5)
    async with FakeOpenAIServer(slow) as primary, FakeOpenAIServer(REPLY) as backup:
        switcher = switcher_of(primary.base_url, backup.base_url, clock=clock)
        async with LivePipeline(switcher) as pipe:
            await pipe.push(UserStartedSpeakingFrame())
            await pipe.push(caller_turn("Actually never mind", speculation=True))
            await until(lambda: primary.requests, 5.0)
            await pipe.push(EagerEndOfTurnCancelFrame())  # the caller went on
            await asyncio.wait_for(primary.client_gone.wait(), 3.0)
            clock.advance(5.0)
            await asyncio.sleep(0.1)
    assert not backup.requests and switcher.stats.switches == 0
    assert reply_of(pipe) == ([], "")


async def test_a_speculation_the_commit_released_is_retried_as_committed():
    # The primary stalls on a speculative request; the commit releases it meanwhile; then the
    # first-token timeout hands it to the backup, which must not hold it for a release that
    # already went by.
    clock = ManualClock()
    slow = FakeReply(tokens=["Too", " late"], token_delay_s=1.5)
    async with FakeOpenAIServer(slow) as primary, FakeOpenAIServer(REPLY) as backup:
        switcher = switcher_of(primary.base_url, backup.base_url, clock=clock)
        async with LivePipeline(switcher) as pipe:
            await pipe.push(UserStartedSpeakingFrame())
            await pipe.push(caller_turn("Are you open on Friday?", speculation=True))
            await until(lambda: primary.requests, 5.0)
            await pipe.push(UserStoppedSpeakingFrame())
            clock.advance(3.1)
            await pipe.wait_for(ended(pipe), 10.0)
    assert reply_of(pipe)[1] == "We open at nine."


class CutOffServer(FakeOpenAIServer):
    """Streams the first ``cut_after`` tokens, then drops the connection mid-reply."""

    cut_after = 2

    async def _write_reply(self, request, resp) -> str:
        for token in self.reply.tokens[: self.cut_after]:
            await resp.write(self._chunk({"content": token}))
            self.tokens_sent += 1
        await asyncio.sleep(0.05)
        request.transport.close()
        raise ConnectionResetError("provider went away")


async def test_cut_off_mid_reply_ends_that_reply_and_the_next_turn_uses_the_next_llm():
    clock = ManualClock()
    async with CutOffServer(REPLY) as primary, FakeOpenAIServer(REPLY) as backup:
        switcher = switcher_of(primary.base_url, backup.base_url, clock=clock)
        async with LivePipeline(switcher) as pipe:
            await pipe.push(caller_turn("When do you open?"))
            await pipe.wait_for(ended(pipe), 10.0)
            await asyncio.sleep(0.2)
            first = reply_of(pipe)
            await pipe.push(caller_turn("And on Saturday?"))
            await pipe.wait_for(lambda: len(pipe.down_of(LLMFullResponseEndFrame)) == 2, 10.0)
    # The words already spoken stay; the reply is closed once, not re-run (no repeated words).
    assert first == ([LLMFullResponseStartFrame, LLMFullResponseEndFrame], "We open")
    assert len(backup.requests) == 1
    assert backup.requests[0]["messages"][-1]["content"] == "And on Saturday?"
    kinds, text = reply_of(pipe)
    assert kinds == [LLMFullResponseStartFrame, LLMFullResponseEndFrame] * 2
    assert text == "We open" + "We open at nine."
    assert switcher.stats.switches == 1 and switcher.retries == 0
