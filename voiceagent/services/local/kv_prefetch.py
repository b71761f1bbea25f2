"""Keep the local LLM's cache one turn ahead: evaluate the agent's reply while the caller talks.

llama.cpp reuses the KV state of its previous request for the longest common token prefix.
After an agent turn the next request is ``[system, …, agent reply, caller turn]``, but the
last prompt the server evaluated ended before that reply: the reply's tokens and the caller's
are evaluated on the critical path, after the caller stopped. ``ContextPrefetcher`` sends a
one-token request with the conversation as soon as the caller has heard the reply (the turn
engine's ``ConversationUpdatedFrame``), so the reply is evaluated while the caller is talking
and their turn costs only their own words. The server runs requests one at a time, so a turn
that starts before the prefetch finished waits for work it would have had to do anyway.

Used by ``VoiceLLMService(prefetch=True)`` for the local llama.cpp server; not when tools are
offered (they change the prompt).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from loguru import logger

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


class ContextPrefetcher:
    """Runs at most one prefetch at a time, plus one more when the conversation grew meanwhile."""

    def __init__(self, *, base_url: str, model: str, system_prompt: str | None) -> None:
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None
        self._next: list[dict[str, Any]] | None = None
        self._closed = False
        self.prefetches = 0
        self.failures = 0

    def schedule(self, messages: list[dict[str, Any]]) -> None:
        """Have the server evaluate ``messages`` (without the system prompt) soon.

        Nothing once closed: a conversation update that reaches the LLM during or after the
        call's cleanup would open a session nobody closes.
        """
        if self._closed:
            return
        self._next = self._system + [m for m in messages if m.get("role") != "system"]
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._next is not None:
            messages, self._next = self._next, None
            try:
                if self._session is None:
                    self._session = aiohttp.ClientSession()
                await prefetch_prompt(self._session, self._base_url, self._model, messages)
                self.prefetches += 1
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as e:
                self.failures += 1
                if self.failures == 1:
                    logger.warning(f"prefetching the conversation failed: {e!r}")

    async def close(self) -> None:
        """Stop a running prefetch and close the HTTP session; later schedules do nothing."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
