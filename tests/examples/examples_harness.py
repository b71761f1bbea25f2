"""Running the examples/ against the loopback fakes: Deepgram and an OpenAI-compatible LLM on
127.0.0.1, the real server (or the example's own), and the caller emulator placing the call.

``ObservedBot`` wraps an example's bot: it keeps each call's ``TurnProcessor`` (the
conversation) and records every ``AgentHeardFrame`` (what the caller heard of each agent turn).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web
from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.emulator.caller import CallerEmulator, CallReport
from voiceagent.emulator.script import CallerLine
from voiceagent.frames import AgentHeardFrame
from voiceagent.server.workers import load_bot_factory
from voiceagent.settings import Settings
from voiceagent.turns.processor import TurnProcessor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.fake_deepgram import (  # noqa: E402
    FakeDeepgramHost,
    FakeDeepgramSTT,
    FakeDeepgramTTS,
    FakeUtterance,
)
from fakes.fake_openai_tools import FakeToolCall, FakeToolReply, FakeToolServer  # noqa: E402

from tests.e2e.e2e_harness import CallEvents, loopback_settings, serving  # noqa: E402

__all__ = [
    "EXAMPLES",
    "FakeDeepgramHost",
    "FakeDeepgramTTS",
    "FakeToolCall",
    "FakeUtterance",
    "ObservedBot",
    "ScriptedLLM",
    "call",
    "call_example",
    "cloud_settings",
    "deepgram_stt",
    "example_factory",
    "load_example",
    "phone_tts",
    "tokens",
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CALL_TIMEOUT_S = 60.0


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module (its classes, for unit tests)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def example_factory(name: str) -> Any:
    """The ``factory`` of ``examples/<name>.py``, loaded as ``voiceagent serve --bot`` does."""
    return load_bot_factory(f"{EXAMPLES / name}.py:factory")


def cloud_settings(deepgram_url: str, llm_url: str, **sections: Any) -> Settings:
    """Deepgram STT/TTS and the LLM on the loopback fakes, no fallbacks, nothing recorded."""
    return loopback_settings(
        cloud={
            "deepgram_api_key": "dg-test-key",
            "deepgram_url": deepgram_url,
            "openai_base_url": llm_url,
            "openai_api_key": "sk-test",
        },
        fallback={"stt": [], "llm": [], "tts": []},
        storage={"enabled": False},
        **sections,
    )


def deepgram_stt(*utterances: FakeUtterance, interim_after_bytes: int = 9600) -> FakeDeepgramSTT:
    """A Deepgram STT fake hearing ``utterances`` in order (speech: RMS above 300)."""
    return FakeDeepgramSTT(
        list(utterances), interim_after_bytes=interim_after_bytes, speech_rms=300
    )


def phone_tts() -> FakeDeepgramTTS:
    """A Deepgram TTS fake speaking at a phone's level (480 bytes of audio a character)."""
    return FakeDeepgramTTS(amplitude=6000, bytes_per_char=480)


class HeardTap(FrameProcessor):
    """Records each ``AgentHeardFrame`` going by, either way."""

    def __init__(self, heard: list[AgentHeardFrame]) -> None:
        super().__init__()
        self._heard = heard

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AgentHeardFrame) and frame.full_text:
            self._heard.append(frame)
        await self.push_frame(frame, direction)


@dataclass
class ObservedBot:
    """An example's bot, with each call's turn engine and heard reports kept for the test."""

    bot: Any
    turns: list[TurnProcessor] = field(default_factory=list)
    heard: list[AgentHeardFrame] = field(default_factory=list)

    async def start(self, progress: Any = None) -> None:
        await self.bot.start(progress)

    async def stop(self) -> None:
        await self.bot.stop()

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        processors = await self.bot(call, settings)
        self.turns += [p for p in processors if isinstance(p, TurnProcessor)]
        return [*processors, HeardTap(self.heard)]

    def assistant_messages(self) -> list[str]:
        """What the agent said, as the call's conversation holds it."""
        messages = self.turns[0].conversation.messages
        return [m["content"] for m in messages if m["role"] == "assistant" and m.get("content")]


async def call(url: str, lines: list[CallerLine], events: CallEvents, **run: Any) -> CallReport:
    """Place one emulated call to ``url`` and follow ``lines``."""
    caller = CallerEmulator(url)
    run.setdefault("lead_in_s", 0.5)
    run.setdefault("tail_s", 2.0)
    run.setdefault("max_wait_reply_s", 15.0)
    return await asyncio.wait_for(caller.run(lines, on_event=events, **run), CALL_TIMEOUT_S)


async def call_example(
    name: str, settings: Settings, lines: list[CallerLine]
) -> tuple[ObservedBot, CallReport, CallEvents]:
    """Serve ``examples/<name>.py``'s bot on the real server (in process), place one call."""
    bot = ObservedBot(example_factory(name)(settings))
    await bot.start()
    try:
        async with serving(settings, bot) as server:
            events = CallEvents()
            report = await call(server.media_url, lines, events)
    finally:
        await bot.stop()
    return bot, report, events


class ScriptedLLM(FakeToolServer):
    """An OpenAI-compatible LLM that answers by what the request holds, not by request order.

    Speculative requests come and go before the commit; so each request is answered from its
    own messages: ``tool`` (a tool call, when no tool result is in the conversation yet) and
    ``answer(messages)`` (the reply's tokens).
    """

    def __init__(self, answer: Any, tool: FakeToolCall | None = None) -> None:
        super().__init__()
        self._answer = answer
        self._tool = tool

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        messages = body.get("messages", [])
        has_result = any(m.get("role") == "tool" for m in messages)
        if self._tool is not None and not has_result:
            self.reply = FakeToolReply(tool_calls=[self._tool], token_delay_s=0.01)
        else:
            self.reply = FakeToolReply(tokens=self._answer(messages), token_delay_s=0.01)
        self.requests.append(body)
        return await self._stream(request, self._write_tool_reply)


def tokens(text: str) -> list[str]:
    """``text`` as an LLM streams it: word by word, spaces leading."""
    words = text.split(" ")
    return [words[0], *(f" {w}" for w in words[1:])]
