"""A fake OpenAI-compatible chat-completions server (aiohttp, 127.0.0.1) for tests.

It streams a scripted reply as SSE chunks, one token every ``token_delay_s``, records every
request body, and notices when the client closes the stream mid-reply (``client_gone``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.loopback import start_loopback


@dataclass
class FakeReply:
    """What the fake answers to the next request."""

    tokens: list[str] = field(default_factory=lambda: ["Hello", " there", "."])
    token_delay_s: float = 0.0
    status: int = 200


class FakeOpenAIServer:
    """``async with FakeOpenAIServer() as fake: fake.base_url`` → ``http://127.0.0.1:P/v1``."""

    def __init__(self, reply: FakeReply | None = None) -> None:
        self.reply = reply or FakeReply()
        self.requests: list[dict[str, Any]] = []
        self.tokens_sent = 0
        self.completed_streams = 0
        self.client_gone = asyncio.Event()
        self.client_gone_at: float | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FakeOpenAIServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner, self.port = await start_loopback(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "fake-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        reply = self.reply
        if reply.status != 200:
            return web.json_response(
                {"error": {"message": "fake provider failure", "type": "server_error"}},
                status=reply.status,
            )
        return await self._stream(request, self._write_reply)

    async def _stream(self, request: web.Request, body) -> web.StreamResponse:
        """SSE envelope: role chunk, ``body(request, resp) -> finish_reason``, [DONE]; notes a
        client that hangs up mid-stream."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            await resp.write(self._chunk({"role": "assistant", "content": ""}))
            finish = await body(request, resp)
            await resp.write(self._chunk({}, finish=finish))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            self.completed_streams += 1
        except ConnectionResetError:
            self._note_client_gone()
        except asyncio.CancelledError:
            self._note_client_gone()
            raise
        return resp

    async def _write_reply(self, request: web.Request, resp: web.StreamResponse) -> str:
        reply = self.reply
        for token in reply.tokens:
            await self._pace(request, reply.token_delay_s)
            await resp.write(self._chunk({"content": token}))
            self.tokens_sent += 1
        return "stop"

    @staticmethod
    async def _pace(request: web.Request, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if request.transport is None or request.transport.is_closing():
            raise ConnectionResetError("client closed the stream")

    def _note_client_gone(self) -> None:
        self.client_gone_at = time.monotonic()
        self.client_gone.set()
