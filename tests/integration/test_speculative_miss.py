"""Speculation end to end: router → real LLM service (fake SSE server) → hold, ManualClock.

A miss: the caller pauses, the agent starts answering speculatively, the caller goes on —
the HTTP request must be closed (the server sees it) and nothing of that reply may be
spoken; the finished utterance gets its own request and that reply is spoken. A hit: the
caller's final words are the speculated ones — one request, released at the commit.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pipecat.frames.frames import LLMFullResponseEndFrame, LLMTextFrame

from voiceagent.frames import (
    LLMCancelFrame,
    SpeculationCommitFrame,
    SpeculationDiscardFrame,
    UserTurnCommittedFrame,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.fake_openai import FakeOpenAIServer, FakeReply  # noqa: E402
from speculative_call_harness import SYSTEM, SpeculativeCall  # noqa: E402

FIRST = "I need to book a cleaning"
FULL = "I need to book a cleaning for my son"


def user_text(request: dict) -> str:
    return [m["content"] for m in request["messages"] if m["role"] == "user"][-1]


async def test_speculative_miss_closes_the_request_and_speaks_only_the_real_answer():
    wrong = [f" cleaning-slot-{i}" for i in range(60)]  # a long, slow speculative answer
    right = ["Of course", ",", " when", " would", " your", " son", " like", " to", " come", "?"]
    async with (
        FakeOpenAIServer(FakeReply(tokens=wrong, token_delay_s=0.05)) as fake,
        SpeculativeCall(fake.base_url) as call,
    ):
        # Caller: "I need to book a cleaning" — three agreeing partials, then a pause.
        await call.starts_talking()
        await call.says(FIRST, FIRST, FIRST)
        await call.stops_talking()

        # The router speculated: the server got the request and is streaming the answer.
        await call.until(lambda: len(call.generated(LLMTextFrame)) >= 2, at=call.after_llm)
        assert len(fake.requests) == 1 and user_text(fake.requests[0]) == FIRST
        assert not call.spoken(LLMTextFrame)  # held: the caller has not finished

        # 100 ms later the caller goes on: "... for my son".
        fake.reply = FakeReply(tokens=right)
        await call.wait(0.1)
        await call.starts_talking()
        await asyncio.wait_for(fake.client_gone.wait(), timeout=2.0)
        assert fake.completed_streams == 0 and fake.tokens_sent < len(wrong)
        cancels = call.spoken(LLMCancelFrame)
        assert [c.turn_id for c in cancels] == [1]
        assert [d.turn_id for d in call.spoken(SpeculationDiscardFrame)] == [1]

        await call.says(FULL, FULL, FULL)
        await call.stops_talking()
        await call.wait(0.5)  # silence: the router commits the whole utterance

        await call.until(lambda: call.replies_ended() >= 1)
        await call.until(lambda: fake.completed_streams == 1)
        await asyncio.sleep(0.1)  # the cancelled stream's stragglers would show by now

        assert len(fake.requests) == 2
        assert user_text(fake.requests[1]) == FULL
        assert fake.requests[1]["messages"][0] == {"role": "system", "content": SYSTEM}
        # Only the real answer was spoken; the speculative one was generated, never heard.
        assert call.spoken_text() == "".join(right)
        assert any(f.text in wrong for f in call.generated(LLMTextFrame))
        assert not any(f.text in wrong for f in call.spoken(LLMTextFrame))
        assert call.replies_ended() == 1
        [turn] = call.spoken(UserTurnCommittedFrame)
        assert turn.text == FULL
        assert call.router.stats.cancellations == 1
        assert call.llm.cancelled_generations == 1


async def test_speculative_hit_makes_one_request_and_speaks_it_at_the_commit():
    reply = ["Sure", ",", " what", " day", " works", " for", " you", "?"]
    async with (
        FakeOpenAIServer(FakeReply(tokens=reply, token_delay_s=0.01)) as fake,
        SpeculativeCall(fake.base_url) as call,
    ):
        await call.starts_talking()
        await call.says(FIRST, FIRST, FIRST)
        await call.stops_talking()

        # The whole speculative answer arrives while the caller is still (maybe) pausing.
        await call.until(lambda: bool(call.generated(LLMFullResponseEndFrame)), at=call.after_llm)
        assert fake.completed_streams == 1
        assert call.hold.holding and not call.spoken(LLMTextFrame)

        await call.wait(0.3)  # the pause is long enough: commit on the speculated words
        await call.until(lambda: call.replies_ended() >= 1)

        assert len(fake.requests) == 1 and user_text(fake.requests[0]) == FIRST
        assert call.spoken_text() == "".join(reply)
        [turn] = call.spoken(UserTurnCommittedFrame)
        assert turn.speculative_hit and turn.text == FIRST
        # Released at the commit: the reply follows the commit verdict out of the hold.
        spoken = call.spoken(SpeculationCommitFrame, LLMTextFrame)
        assert isinstance(spoken[0], SpeculationCommitFrame) and spoken[0].turn_id == turn.turn_id
        assert not call.spoken(LLMCancelFrame)
        assert call.router.stats.speculative_hits == 1
