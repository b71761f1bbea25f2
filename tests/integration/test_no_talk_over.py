"""A reply committed at a pause must not start over a caller who resumes.

Chain: CallerSoundDetector → StabilityCommitRouter → instant fake agent → FloorHold, on a
ManualClock. The caller says "I'd like to book a cleaning for next Tuesday", pauses 0.45 s
(the router commits at 0.25 s; the reply is ready 0.35 s later), then goes on "sometime in the
afternoon". The VAD reports the continuation only 0.3 s after its first sound; by then the
agent would be talking over the caller. With the floor hold nothing of the first reply plays.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "processors"))
from clocked_pipeline import Call  # noqa: E402
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.text.base_text_aggregator import TextType
from pipecat.utils.time import time_now_iso8601

from voiceagent.clock import ManualClock
from voiceagent.processors.agent_context import CallContext
from voiceagent.processors.caller_sound import CallerSoundDetector
from voiceagent.processors.commit_policy import RouterParams
from voiceagent.processors.floor_hold import FloorHold
from voiceagent.processors.stability_router import StabilityCommitRouter
from voiceagent.settings import PIPELINE_SAMPLE_RATE

RATE = PIPELINE_SAMPLE_RATE
N = RATE // 50
SPEECH = (np.sin(2 * np.pi * 200 * np.arange(N) / RATE) * 3000).astype("<i2").tobytes()
QUIET = bytes(2 * N)


class QuickAgent(FrameProcessor):
    """Answers every LLM request ``delay_s`` later with one spoken chunk (fast LLM + TTS)."""

    def __init__(self, clock: ManualClock, delay_s: float) -> None:
        super().__init__()
        self._clock = clock
        self._delay_s = delay_s
        self.replies = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            self.replies += 1
            n = self.replies
            self._clock.call_later(self._delay_s, lambda: self.create_task(self._answer(n)))
            return
        await self.push_frame(frame, direction)

    async def _answer(self, n: int) -> None:
        for out in (
            TTSStartedFrame(),
            TTSAudioRawFrame(b"\x01\x00" * N, RATE, 1),
            TTSTextFrame(f"Sure, reply {n}.", TextType.SENTENCE),
            TTSStoppedFrame(),
        ):
            await self.push_frame(out)


async def talk(call: Call, frames: int, audio: bytes, *partials: str) -> None:
    for i in range(frames):
        await call.send(InputAudioRawFrame(audio, RATE, 1))
        if partials and i % 5 == 4:
            text = partials[min(i // 5, len(partials) - 1)]
            await call.send(InterimTranscriptionFrame(text, "caller", time_now_iso8601()))
        await call.advance(0.02)


@pytest.mark.parametrize("floor_hold", [True, False])
async def test_caller_resumes_after_a_pause_and_the_agent_does_not_talk_over_them(floor_hold):
    clock = ManualClock()
    router = StabilityCommitRouter(CallContext(), params=RouterParams(speculate=False), clock=clock)
    agent = QuickAgent(clock, delay_s=0.35)
    hold = FloorHold(clock=clock) if floor_hold else IdentityFilter()
    chain = Pipeline([CallerSoundDetector(), router, agent, hold])
    async with Call(chain, clock) as call:
        first = "I'd like to book a cleaning for next Tuesday"
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await talk(call, 50, SPEECH, first, first, first)
        await call.send(TranscriptionFrame(first, "caller", time_now_iso8601(), finalized=True))
        await talk(call, 10, QUIET)  # the VAD's stop_secs of silence
        await call.send(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        await talk(call, 13, QUIET)  # 0.26 s later: committed; the reply comes in 0.35 s
        assert router.stats.commits == 1 and agent.replies == 1
        # The caller goes on at once; the reply is ready 0.1 s into their speech, and the VAD
        # confirms the speech only 0.3 s after its first sound.
        await talk(call, 15, SPEECH)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await talk(call, 40, SPEECH, "sometime in the afternoon")
        spoken_over_caller = [f for f in call.down if isinstance(f, TTSAudioRawFrame)]
        assert router.stats.regrets == 1
        if floor_hold:
            assert spoken_over_caller == []
            assert router.stats.replies_cancelled == 1
        else:  # what the hold prevents: the first reply went out over the caller's words
            assert len(spoken_over_caller) == 1
