"""The turn engine end to end: engine → real LLM service (fake SSE server) → … → TwilioOutput.

The bundled bot's chain (``PhoneCall``: the real turn processor, VoiceLLMService with pipecat's
speculation gate, sentence aggregator, a tone TTS, hang-up, TwilioOutput with a Twilio leg that
echoes marks) on a ManualClock; the caller's voice arrives as VAD, sound and transcript frames.

- a miss: the LLM starts early on a pause, the caller goes on — the HTTP request is closed (the
  server sees it) and nothing of it is spoken; the finished utterance gets its own answer;
- a hit: one request, spoken at the commit;
- commit and regret: the caller goes on right after a commit — nothing of that reply is heard;
- no talk-over: a reply ready just as the caller resumes never starts over them.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pipecat.frames.frames import VADUserStartedSpeakingFrame

from voiceagent.frames import CallerSoundFrame

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.fake_openai import FakeReply  # noqa: E402
from fakes.fake_openai_tools import FakeToolServer  # noqa: E402
from phone_call_harness import PhoneCall, receptionist_settings  # noqa: E402


def user_text(request: dict) -> str:
    return [m["content"] for m in request["messages"] if m["role"] == "user"][-1]


def media_sent(call: PhoneCall) -> int:
    return sum(1 for _, m in call.sent if m["event"] == "media")


async def test_a_speculative_miss_closes_the_request_and_speaks_only_the_real_answer(tmp_path):
    wrong = FakeReply(tokens=[f" slot-{i}" for i in range(60)], token_delay_s=0.05)
    right = FakeReply(tokens=["Of course,", " when", " would", " your", " son", " come?"])
    async with FakeToolServer(script=[wrong, right]) as llm:
        settings = receptionist_settings(llm.base_url, tmp_path, speculate=True)
        async with PhoneCall(settings) as call:
            # "I need to book a cleaning," — a pause: the engine starts the LLM at once.
            await call.says("I need to book a cleaning,")
            await call.until(lambda: llm.tokens_sent >= 2)
            assert user_text(llm.requests[0]) == "I need to book a cleaning,"
            assert not call.tts.spoken  # held: the turn is not over

            # "... for my son": the speculation is withdrawn, its stream closed.
            await call.says("for my son.")
            await asyncio.wait_for(llm.client_gone.wait(), 2.0)
            await call.plays_out(lambda: "when would your son come?" in call.tts.spoken)

            assert len(llm.requests) == 2
            assert user_text(llm.requests[1]) == "I need to book a cleaning, for my son."
            assert call.tts.spoken == ["Of course,", "when would your son come?"]
            turns = call.parts.processors["turns"]
            assert turns.stats.commits == 1 and turns.stats.speculations_cancelled >= 1


async def test_a_speculative_hit_makes_one_request_and_speaks_it_at_the_commit(tmp_path):
    reply = FakeReply(tokens=["Sure,", " what", " day", " works", " for", " you?"])
    async with FakeToolServer(script=[reply]) as llm:
        settings = receptionist_settings(llm.base_url, tmp_path, speculate=True)
        async with PhoneCall(settings) as call:
            await call.says("I need to book a cleaning.")
            await call.plays_out(lambda: "what day works for you?" in call.tts.spoken)
            assert len(llm.requests) == 1
            turns = call.parts.processors["turns"]
            assert turns.stats.speculative_hits == 1


async def test_the_caller_goes_on_right_after_a_commit_and_nothing_of_that_reply_is_heard(
    tmp_path,
):
    slow = FakeReply(tokens=["Sure", ",", " I", " can", " help", "."] * 8, token_delay_s=0.15)
    right = FakeReply(tokens=["Of course,", " let", " me", " cancel", " it."])
    async with (
        FakeToolServer(script=[slow, right]) as llm,
        PhoneCall(receptionist_settings(llm.base_url, tmp_path)) as call,
    ):
        await call.says("Wait.")
        await call.wait(0.35)  # committed; the reply's first tokens are on their way
        assert call.parts.processors["turns"].stats.commits == 1
        await call.says("Actually I need to cancel my appointment.")
        await asyncio.wait_for(llm.client_gone.wait(), 2.0)
        await call.plays_out(lambda: "let me cancel it." in call.tts.spoken)

        assert call.tts.spoken == ["Of course,", "let me cancel it."]
        assert user_text(llm.requests[1]) == "Wait. Actually I need to cancel my appointment."
        assert call.parts.processors["turns"].stats.regrets == 1


async def test_a_reply_ready_as_the_caller_resumes_never_starts_over_them(tmp_path):
    reply = FakeReply(tokens=["Sure,", " next", " Tuesday", " works."], token_delay_s=0.2)
    answer = FakeReply(tokens=["The", " afternoon", " is", " open."])
    async with (
        FakeToolServer(script=[reply, answer]) as llm,
        PhoneCall(receptionist_settings(llm.base_url, tmp_path)) as call,
    ):
        await call.says("I'd like to book a cleaning for next Tuesday.")
        await call.wait(0.3)
        assert call.parts.processors["turns"].stats.commits == 1  # the reply is on its way
        sent = media_sent(call)
        # The caller's line turns loud (they go on): the reply's start is held...
        await call.worker.queue_frame(CallerSoundFrame(sounding=True))
        await call.until(lambda: call.tts.spoken, timeout=5.0)  # ...while it is delivered
        await call.wait(0.3)
        assert media_sent(call) == sent  # not a sound of it reached the caller
        # ...and the VAD confirms speech: the reply is dropped unheard.
        await call.worker.queue_frame(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.wait(0.1)
        await call.worker.queue_frame(CallerSoundFrame(sounding=False))
        await call.says("Sometime in the afternoon.")
        await call.plays_out(lambda: "The afternoon is open." in call.tts.spoken)
        assert media_sent(call) > sent
        heard = [m["content"] for m in call.parts.conversation.messages]
        assert "Sure, next Tuesday works." not in " ".join(heard)
