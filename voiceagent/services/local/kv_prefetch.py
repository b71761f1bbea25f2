"""Keep the local LLM's cache one turn ahead: evaluate the agent's reply while the caller talks.

llama.cpp reuses the KV state of its previous request for the longest common token prefix.
After an agent turn the next request is ``[system, …, agent reply, caller turn]``, but the
last prompt the server evaluated ended before that reply: the reply's tokens and the caller's
are evaluated on the critical path, after the caller stopped (60 tokens ≈ 1.2 s on 2 cores in
``voiceagent demo``). ``KVPrefetch`` sends a one-token request with the context as soon as the
caller has heard the reply (``AgentHeardFrame``, after the router added it to the context), so
the reply is evaluated while the caller is talking and their turn costs only their own words.
The server runs requests one at a time, so a caller's turn that starts before the prefetch
finished waits for work it would have had to do anyway.

Placed upstream of the StabilityCommitRouter (it reads the router's ``CallContext``); for the
local llama.cpp server only, and not when tools are offered (they change the prompt).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from loguru import logger
from pipecat.frames.frames import CancelFrame, EndFrame, Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.frames import AgentHeardFrame
from voiceagent.processors.agent_context import CallContext

PREFETCH_TIMEOUT_S = 10.0


async def prefetch_prompt(
    session: aiohttp.ClientSession, base_url: str, model: str, messages: list[dict[str, Any]]
) -> None:
    """Have an OpenAI-compatible llama.cpp server evaluate ``messages`` (one token generated).

    Raises:
        aiohttp.ClientError, TimeoutError: The server could not be reached.
        RuntimeError: The server answered with an error status.
    """
    payload = {
        "model": model,
        "messages": messages,
        "max_tokens": 1,
        "temperature": 0.0,
        "stream": False,
    }
    timeout = aiohttp.ClientTimeout(total=PREFETCH_TIMEOUT_S)
    async with session.post(f"{base_url}/chat/completions", json=payload, timeout=timeout) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {(await r.text())[:200]}")
        await r.read()


class KVPrefetch(FrameProcessor):
    """After each heard agent turn, pre-evaluates the conversation on the local LLM server."""

    def __init__(
        self,
        context: CallContext,
        *,
        base_url: str,
        model: str,
        system_prompt: str | None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._context = context
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None
        self._again = False
        self.prefetches = 0
        self.failures = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Forward everything; start a prefetch after each heard agent turn."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, AgentHeardFrame) and direction is FrameDirection.UPSTREAM:
            if frame.text and self._context.tools is None:
                self._schedule()
        elif isinstance(frame, EndFrame | CancelFrame):
            await self._close()

    def _schedule(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True  # one more once the running one is done: the context grew
            return
        self._task = self.create_task(self._run(), name=f"{self}::prefetch")

    async def _run(self) -> None:
        while True:
            self._again = False
            messages = self._system + [dict(m) for m in self._context.messages]
            try:
                if self._session is None:
                    self._session = aiohttp.ClientSession()
                await prefetch_prompt(self._session, self._base_url, self._model, messages)
                self.prefetches += 1
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as e:
                self.failures += 1
                if self.failures == 1:
                    logger.warning(f"{self}: prefetching the context failed: {e!r}")
            if not self._again:
                return

    async def _close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            await self.cancel_task(task)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def cleanup(self) -> None:
        """Stop a running prefetch and close the HTTP session."""
        await self._close()
        await super().cleanup()
