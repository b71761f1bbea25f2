"""Supervise the local llama.cpp OpenAI-compatible server (``llama_cpp.server``) as a child process.

The server listens on 127.0.0.1 only. It is started with the arguments of
``python -m llama_cpp.server`` as a supervised child process
(:class:`~voiceagent.services.local.llama_process.LlamaProcess`: it never outlives the agent
process, and a watchdog restarts it on the same port if it dies); this module is the facade
the agent uses: start/stop, the OpenAI-compatible ``base_url``, and the system-prompt warm-up,
which is re-run after each restart.

Notes on llama-cpp-python's server (0.3.36) that shape this module:

- Every request, ``GET /v1/models`` included, takes the one model lock. By default a request
  waiting on that lock cuts a running stream short (``interrupt_requests``), which would silently
  truncate one call's reply when another call (or a health probe) sends a request; it is turned
  off, so requests queue instead. A cancelled reply still stops at once: the server checks for a
  closed client connection after every token. Health is checked over HTTP only at start;
  afterwards the watchdog watches the process, never polls the API.
- Llama reuses the KV cache for the longest common token prefix with the previous prompt, so one
  tiny completion with the call's system prompt (and tools, which Qwen's template renders into
  the system block) makes the first real turn skip the prompt's prefill.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from loguru import logger

from voiceagent.services.local.llama_process import LlamaProcess, LlamaServerError

__all__ = ["LlamaServer", "LlamaServerError"]


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """Runs ``python -m llama_cpp.server`` on 127.0.0.1 and keeps it alive.

    Usage::

        async with LlamaServer(gguf_path) as server:
            await server.warm_up(system_prompt)
            llm = create_llm_service(
                base_url=server.base_url, api_key=None, model=server.model_alias, ...
            )

    Attributes:
        model_alias: The model name the server answers to (any name is accepted by it).
    """

    def __init__(
        self,
        model_path: Path,
        *,
        port: int = 0,
        threads: int = 2,
        n_ctx: int = 2048,
        python: str = sys.executable,
        startup_timeout_s: float = 60.0,
        chat_format: str | None = None,
        model_alias: str = "local",
        max_restarts: int = 5,
    ) -> None:
        """Configure the server; nothing runs until :meth:`start`.

        Args:
            model_path: The GGUF file to serve.
            port: Port on 127.0.0.1; 0 picks a free one at start (kept across restarts).
            threads: Threads for generation and prompt processing.
            n_ctx: Context window in tokens.
            python: Interpreter that has ``llama-cpp-python[server]`` installed.
            startup_timeout_s: How long the model may take to load and answer its first request.
            chat_format: llama-cpp-python ``--chat_format``; None uses the GGUF's own template.
                For Qwen2.5 that is right: replies stream, and a forced ``tool_choice`` yields
                proper ``tool_calls``; with ``"auto"`` the model writes its call as plain text
                (``chatml-function-calling`` is no better: it cannot stream auto tool choice).
            model_alias: Model name the server reports.
            max_restarts: Consecutive failed lives (each shorter than a minute) after which the
                watchdog gives up.
        """
        self.model_path = Path(model_path)
        self.threads = threads
        self.n_ctx = n_ctx
        self.chat_format = chat_format
        self.model_alias = model_alias
        self._port = port
        self._warm_payload: dict[str, Any] | None = None
        self._process = LlamaProcess(
            python=python,
            startup_timeout_s=startup_timeout_s,
            max_restarts=max_restarts,
            on_restarted=self._rewarm,
        )

    @property
    def restarts(self) -> int:
        """How many times the watchdog respawned the server after it died."""
        return self._process.restarts

    @property
    def python(self) -> str:
        """Interpreter the server runs with."""
        return self._process.python

    @python.setter
    def python(self, value: str) -> None:
        self._process.python = value

    @property
    def startup_timeout_s(self) -> float:
        """How long the model may take to load and answer its first request."""
        return self._process.startup_timeout_s

    @startup_timeout_s.setter
    def startup_timeout_s(self, value: float) -> None:
        self._process.startup_timeout_s = value

    @property
    def max_restarts(self) -> int:
        """Consecutive failed lives after which the watchdog gives up."""
        return self._process.max_restarts

    @max_restarts.setter
    def max_restarts(self, value: int) -> None:
        self._process.max_restarts = value

    @property
    def port(self) -> int:
        """The TCP port (0 until started when a free port was requested)."""
        return self._port

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``."""
        if not self._port:
            raise LlamaServerError("LlamaServer.base_url is known only after start()")
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, if any."""
        return self._process.pid

    @property
    def ready(self) -> bool:
        """Whether the server is up and answered its health check (false while restarting)."""
        return self._process.ready

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the server is ready (e.g. after a watchdog restart).

        Raises:
            TimeoutError: Not ready within ``timeout`` seconds.
        """
        await self._process.wait_ready(timeout)

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process.running

    def recent_output(self) -> list[str]:
        """The server's last output lines (also logged at debug level)."""
        return self._process.recent_output()

    async def __aenter__(self) -> LlamaServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Spawn the server, wait until it answers, and start the watchdog.

        Raises:
            LlamaServerError: The model file is missing, the process exited, or it did not
                become healthy within ``startup_timeout_s`` (the message carries its last log
                lines).
        """
        if self.running:
            return
        if not self.model_path.is_file():
            logger.error(f"local LLM model not found: {self.model_path}")
            raise LlamaServerError(f"local LLM model file not found: {self.model_path}")
        if not self._port:
            self._port = _free_port()
        began = time.monotonic()
        await self._process.start(self._server_args(), self.base_url)
        logger.info(
            f"local LLM server up at {self.base_url} (pid {self.pid}, "
            f"{self.model_path.name}, {time.monotonic() - began:.1f} s)"
        )

    async def stop(self) -> None:
        """Stop the watchdog and the server: SIGTERM, then SIGKILL after a timeout. Idempotent."""
        await self._process.stop()

    async def warm_up(
        self, system_prompt: str, *, tools: list[dict[str, Any]] | None = None
    ) -> None:
        """Run one tiny completion so the system prompt's KV prefix is cached by the server.

        The prompt is remembered and re-warmed after a watchdog restart.

        Args:
            system_prompt: The exact system prompt the calls will send.
            tools: The OpenAI tool schemas the calls will send (Qwen renders them into the
                system block, so they are part of the cached prefix).

        Raises:
            LlamaServerError: The server is not running or answered with an error.
        """
        payload: dict[str, Any] = {
            "model": self.model_alias,
            "messages": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": "Hello."},
            ],
            "max_tokens": 1,
            "temperature": 0.0,
            "stream": False,
        }
        if tools:
            payload["tools"] = tools
        self._warm_payload = payload
        await self._post_warm_up(payload)

    async def _rewarm(self) -> None:
        """After a watchdog restart: warm the remembered prompt again, if there is one."""
        if self._warm_payload is not None:
            await self._post_warm_up(self._warm_payload)

    async def _post_warm_up(self, payload: dict[str, Any]) -> None:
        if not self.running:
            raise LlamaServerError("local LLM server is not running")
        began = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=max(self.startup_timeout_s, 30.0))
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(f"{self.base_url}/chat/completions", json=payload) as resp,
            ):
                body = await resp.text()
                if resp.status != 200:
                    raise LlamaServerError(f"warm-up failed: HTTP {resp.status}: {body[:300]}")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise LlamaServerError(f"warm-up request failed: {e!r}") from e
        logger.info(f"local LLM warmed up the system prompt in {time.monotonic() - began:.2f} s")

    def _server_args(self) -> list[str]:
        """The arguments of ``python -m llama_cpp.server`` for this configuration."""
        args = [
            "--model",
            str(self.model_path),
            "--model_alias",
            self.model_alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self._port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.threads),
            "--n_threads_batch",
            str(self.threads),
            "--interrupt_requests",
            "false",
        ]
        if self.chat_format:
            args += ["--chat_format", self.chat_format]
        return args
