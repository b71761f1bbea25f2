"""VoiceLLMMixin on a pipecat LLM service that is not voiceagent's: the mixin's promises hold.

``EchoLLMService`` is a minimal pipecat ``LLMService`` (a fake provider, as a Pipecat user writes
one): it answers each request by repeating the caller's last words, one token every 50 ms.
``VoiceEcho`` mixes voiceagent in, the documented way: ``class X(VoiceLLMMixin, Provider)``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService

from voiceagent.services.tools import AgentTool, NoArguments
from voiceagent.services.voice_llm import VoiceLLMMixin

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/services: shared fakes
from fakes.harness import LivePipeline  # noqa: E402


class EchoLLMService(LLMService):
    """Answers the last user message word by word."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            text = frame.context.messages[-1]["content"]
            self.answered.append(text)
            await self.push_frame(LLMFullResponseStartFrame())
            for word in text.split():
                await asyncio.sleep(0.05)
                await self.push_frame(LLMTextFrame(f"{word} "))
            await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)


class VoiceEcho(VoiceLLMMixin, EchoLLMService):
    """The provider with voiceagent's additions."""


def ask(text: str, *, speculation: bool = False) -> LLMContextFrame:
    return LLMContextFrame(
        context=LLMContext(messages=[{"role": "user", "content": text}]), speculation=speculation
    )


async def test_a_withdrawal_voids_a_speculation_queued_behind_a_running_reply():
    llm = VoiceEcho()
    async with LivePipeline(llm) as p:
        await p.push(ask("one two three four five six"))  # a committed reply, streaming
        await p.push(UserStartedSpeakingFrame())
        await p.push(ask("maybe", speculation=True))  # waits behind it
        await asyncio.sleep(0.12)
        await p.push(EagerEndOfTurnCancelFrame())  # the caller went on
        await p.wait_for(lambda: p.down_of(LLMFullResponseEndFrame), 5.0)
        await asyncio.sleep(0.3)
    assert llm.answered == ["one two three four five six"]
    assert llm.withdrawn_queued == 1


async def test_agent_tools_register_on_any_pipecat_llm_service():
    async def hours(args: NoArguments) -> dict[str, Any]:
        return {"open": "9"}

    tool = AgentTool("hours", "Opening hours.", NoArguments, hours, side_effects=False)
    llm = VoiceEcho()
    schema = llm.register_tools([tool])
    assert [t.name for t in schema.standard_tools] == ["hours"]
    assert llm.has_function("hours")
