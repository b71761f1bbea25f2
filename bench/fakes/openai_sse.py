"""A cloud-shaped OpenAI-compatible chat server (aiohttp, 127.0.0.1) with deterministic latency.

``POST /v1/chat/completions`` (``stream: true``) answers the last user message with a reply
built from it (see :func:`reply_for`): the first token after ``ttft_s``, then ``tokens_per_s``,
as SSE chunks like OpenAI's. A client that goes away mid-reply (the LLM service closing its
stream on a cancel or barge-in) stops the generation and is counted. Every request is recorded
with its monotonic times for latency breakdowns.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from loguru import logger

LONG_CUES = ("explain", "tell me about", "walk me through")
_TOKEN_RE = re.compile(r" ?[A-Za-z0-9'\-]+| ?[^\sA-Za-z0-9'\-]")
_WORD_RE = re.compile(r"[A-Za-z']+")


def reply_for(user_text: str) -> str:
    """The agent's deterministic reply to ``user_text`` (long when asked to explain)."""
    words = [w.strip("'").lower() for w in _WORD_RE.findall(user_text)]
    keyword = max((w for w in words if len(w) >= 4), key=len, default="that")
    reply = f"Sure, I can help with that. You asked about {keyword}."
    if any(cue in user_text.lower() for cue in LONG_CUES):
        reply += (
            " Let me walk you through it: the visit starts with a short exam, then x-rays"
            " if needed, and the dentist explains the results."
        )
    return reply + " Anything else?"


def tokenize(text: str) -> list[str]:
    """Split a reply into word/punctuation tokens that concatenate back to ``text``."""
    return _TOKEN_RE.findall(text)


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict)).strip()
    return ""


@dataclass
class LLMRequest:
    """One chat request as the fake served it (monotonic seconds)."""

    user_text: str
    received_at: float
    first_token_at: float | None = None
    last_token_at: float | None = None
    tokens: int = 0
    outcome: str = "running"  # done | cancelled | error


class FakeOpenAIServer:
    """``async with FakeOpenAIServer() as llm: llm.base_url`` → ``http://127.0.0.1:P/v1``."""

    def __init__(
        self, *, ttft_s: float = 0.35, tokens_per_s: float = 30.0, keep_requests: bool = True
    ) -> None:
        """Configure the latency shape.

        Args:
            ttft_s: Time from the request to the first content token.
            tokens_per_s: Token rate after the first.
            keep_requests: Record every request in ``requests`` (off for long load runs:
                only the counters are kept).
        """
        if ttft_s < 0 or tokens_per_s <= 0:
            raise ValueError("ttft_s must be ≥ 0 and tokens_per_s > 0")
        self.ttft_s = ttft_s
        self.token_interval_s = 1.0 / tokens_per_s
        self.keep_requests = keep_requests
        self.requests: list[LLMRequest] = []
        self.served = 0
        self.cancelled = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FakeOpenAIServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "fake-cloud",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        received = time.monotonic()
        try:
            body = await request.json()
        except ValueError:
            logger.warning("fake LLM: request body is not JSON")
            return web.json_response({"error": {"message": "bad JSON"}}, status=400)
        record = LLMRequest(user_text=_last_user_text(body), received_at=received)
        self.served += 1
        if self.keep_requests:
            self.requests.append(record)
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 10_000
        tokens = tokenize(reply_for(record.user_text))[: int(limit)]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        try:
            await resp.prepare(request)
            for i, token in enumerate(tokens):
                due = received + self.ttft_s + i * self.token_interval_s
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if request.transport is None or request.transport.is_closing():
                    raise ConnectionResetError("client closed the stream")
                delta = {"role": "assistant", "content": token} if i == 0 else {"content": token}
                await resp.write(self._chunk(delta))
                now = time.monotonic()
                if record.first_token_at is None:
                    record.first_token_at = now
                record.last_token_at = now
                record.tokens += 1
            await resp.write(self._chunk({}, finish="stop"))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            record.outcome = "done"
        except (ConnectionResetError, ConnectionError):
            record.outcome = "cancelled"
            self.cancelled += 1
        except asyncio.CancelledError:
            record.outcome = "cancelled"
            self.cancelled += 1
            raise
        return resp
