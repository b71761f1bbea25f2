"""Commit and regret: the caller goes on right after a commit; nothing of that reply is spoken.

Router → real LLM service (fake SSE server, slow tokens) → hold → SentenceAggregator, with the
router's time on a ManualClock. The cancelled generation's end frame must not flush the
aggregator's buffered words ("Sure, I") into speech in the middle of the caller's sentence.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pipecat.frames.frames import AggregatedTextFrame, LLMTextFrame

from voiceagent.frames import UserTurnCommittedFrame

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.fake_openai import FakeOpenAIServer, FakeReply  # noqa: E402
from speculative_call_harness import SpeculativeCall  # noqa: E402


async def test_caller_goes_on_after_a_commit_and_no_fragment_of_the_reply_is_spoken():
    reply = FakeReply(
        tokens=["Sure", ",", " I", " can", " help", " with", " that", "."] * 8, token_delay_s=0.15
    )
    async with FakeOpenAIServer(reply) as fake, SpeculativeCall(fake.base_url, speak=True) as call:
        # Caller: "Wait," — then a pause long enough for a commit.
        await call.starts_talking()
        await call.says("Wait,", "Wait,", "Wait,")
        await call.stops_talking()
        for _ in range(20):
            await call.wait(0.1)
            if call.spoken(UserTurnCommittedFrame):
                break
        assert call.spoken(UserTurnCommittedFrame), "never committed"
        # The reply streams: its first words are buffered by the aggregator (not a chunk yet).
        await call.until(lambda: len(call.generated(LLMTextFrame)) >= 3, at=call.after_llm)

        # 300 ms after the commit the caller goes on: "Wait, actually I need to cancel".
        await call.starts_talking()
        await call.says("actually I need", "actually I need to cancel")
        await asyncio.wait_for(fake.client_gone.wait(), timeout=2.0)
        await asyncio.sleep(0.3)  # let the cancelled generation's last frames drain

    assert call.router.stats.regrets == 1 and call.router.stats.replies_cancelled == 1
    assert [f.text for f in call.spoken(AggregatedTextFrame)] == []
