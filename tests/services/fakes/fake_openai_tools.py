"""The fake OpenAI-compatible server, able to stream tool calls too (127.0.0.1 only).

``FakeToolReply`` scripts one answer: optional text tokens, then tool calls whose JSON
arguments arrive in small fragments (as real providers stream them), finishing with
``finish_reason="tool_calls"``. Other replies are served as by ``FakeOpenAIServer``.
``script`` queues replies for the next requests, one each (then ``reply`` again).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .fake_openai import FakeOpenAIServer


@dataclass
class FakeToolCall:
    """One tool call the fake model makes."""

    name: str
    arguments: dict[str, Any] | str  # a str is sent verbatim (e.g. broken JSON)
    id: str = ""


@dataclass
class FakeToolReply:
    """Text tokens (optional), then tool calls, one chunk every ``token_delay_s``."""

    tool_calls: list[FakeToolCall] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    token_delay_s: float = 0.0
    fragment_chars: int = 8


class FakeToolServer(FakeOpenAIServer):
    """``FakeOpenAIServer`` that also streams ``FakeToolReply`` answers."""

    def __init__(self, reply=None, *, script=()) -> None:
        super().__init__(reply)
        self.script: deque = deque(script)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.script:
            self.reply = self.script.popleft()
        if not isinstance(self.reply, FakeToolReply):
            return await super()._chat(request)
        self.requests.append(await request.json())
        return await self._stream(request, self._write_tool_reply)

    async def _write_tool_reply(self, request: web.Request, resp: web.StreamResponse) -> str:
        reply = self.reply
        for token in reply.tokens:
            await self._pace(request, reply.token_delay_s)
            await resp.write(self._chunk({"content": token}))
            self.tokens_sent += 1
        for index, call in enumerate(reply.tool_calls):
            args = call.arguments
            text = args if isinstance(args, str) else json.dumps(args)
            head = {
                "index": index,
                "id": call.id or f"call_{len(self.requests)}_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            await self._pace(request, reply.token_delay_s)
            await resp.write(self._chunk({"tool_calls": [head]}))
            step = max(1, reply.fragment_chars)
            for start in range(0, len(text), step):
                await self._pace(request, reply.token_delay_s)
                piece = {"index": index, "function": {"arguments": text[start : start + step]}}
                await resp.write(self._chunk({"tool_calls": [piece]}))
        return "tool_calls" if reply.tool_calls else "stop"
