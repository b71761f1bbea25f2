"""Supervise the local llama.cpp OpenAI-compatible server (``llama_cpp.server``) as a child process.

The server listens on 127.0.0.1 only. It is started with the arguments of
``python -m llama_cpp.server`` through a small bootstrap that also makes the child exit when
its stdin closes, so a crashed or killed agent process never leaves a 650 MB orphan holding the
port. A watchdog restarts the server (same port, bounded attempts with backoff) if it dies and
re-warms the system prompt afterwards.

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

import asyncio
import collections
import contextlib
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from loguru import logger

# Runs ``llama_cpp.server`` like ``python -m`` does, plus a daemon thread that ends the process
# when stdin reaches EOF (the supervisor closed it, or the supervisor process died).
_BOOTSTRAP = (
    "import os, runpy, sys, threading\n"
    "def _watch_parent():\n"
    "    while sys.stdin.buffer.read(4096):\n"
    "        pass\n"
    "    os._exit(0)\n"
    "threading.Thread(target=_watch_parent, daemon=True).start()\n"
    "sys.argv[0] = 'llama_cpp.server'\n"
    "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n"
)

_LOG_TAIL_LINES = 40
_STOP_TIMEOUT_S = 5.0
_STABLE_AFTER_S = 60.0
_HEALTH_POLL_S = 0.1


class LlamaServerError(RuntimeError):
    """The local LLM server could not be started or is not usable."""


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
        restarts: How many times the watchdog respawned the server after it died.
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
        self.python = python
        self.startup_timeout_s = startup_timeout_s
        self.chat_format = chat_format
        self.model_alias = model_alias
        self.max_restarts = max_restarts
        self.restarts = 0
        self._port = port
        self._proc: asyncio.subprocess.Process | None = None
        self._log_task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._log_tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL_LINES)
        self._stopping = False
        self._warm_payload: dict[str, Any] | None = None
        self._started_at = 0.0
        self._ready = asyncio.Event()

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
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    @property
    def ready(self) -> bool:
        """Whether the server is up and answered its health check (false while restarting)."""
        return self._ready.is_set() and self.running

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the server is ready (e.g. after a watchdog restart).

        Raises:
            TimeoutError: Not ready within ``timeout`` seconds.
        """
        await asyncio.wait_for(self._ready.wait(), timeout)

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.returncode is None

    def recent_output(self) -> list[str]:
        """The server's last output lines (also logged at debug level)."""
        return list(self._log_tail)

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
        self._stopping = False
        if not self._port:
            self._port = _free_port()
        began = time.monotonic()
        await self._spawn_and_wait()
        self._ready.set()
        logger.info(
            f"local LLM server up at {self.base_url} (pid {self.pid}, "
            f"{self.model_path.name}, {time.monotonic() - began:.1f} s)"
        )
        self._watchdog = asyncio.create_task(self._watch(), name="llama-server-watchdog")

    async def stop(self) -> None:
        """Stop the watchdog and the server: SIGTERM, then SIGKILL after a timeout. Idempotent."""
        self._stopping = True
        self._ready.clear()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        await self._terminate()

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

    def _command(self) -> list[str]:
        args = [
            self.python,
            "-c",
            _BOOTSTRAP,
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

    async def _spawn_and_wait(self) -> None:
        """Spawn one server process and wait for its health; on failure leave nothing running."""
        self._log_tail.clear()
        # PASSIVE: llama.cpp's OpenMP workers sleep instead of spinning between requests, so
        # they do not steal the 2 cores from Whisper/Silero/Piper in the agent process.
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._command(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
        except OSError as e:
            logger.error(f"cannot spawn the local LLM server with {self.python}: {e}")
            raise LlamaServerError(f"cannot spawn the local LLM server: {e}") from e
        self._log_task = asyncio.create_task(self._pump_logs(self._proc), name="llama-server-logs")
        try:
            await self._wait_healthy(self._proc)
        except BaseException:
            await self._terminate()
            raise
        self._started_at = time.monotonic()

    async def _wait_healthy(self, proc: asyncio.subprocess.Process) -> None:
        url = f"{self.base_url}/models"
        deadline = time.monotonic() + self.startup_timeout_s
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if proc.returncode is not None:
                    await self._drain_logs()
                    tail = "\n".join(self._log_tail)
                    logger.error(f"local LLM server exited with {proc.returncode}:\n{tail}")
                    raise LlamaServerError(
                        f"local LLM server exited with code {proc.returncode} during start; "
                        f"last output:\n{tail}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            return
                if time.monotonic() > deadline:
                    tail = "\n".join(self._log_tail)
                    logger.error(f"local LLM server not healthy after {self.startup_timeout_s} s")
                    raise LlamaServerError(
                        f"local LLM server did not answer {url} within "
                        f"{self.startup_timeout_s:.0f} s; last output:\n{tail}"
                    )
                await asyncio.sleep(_HEALTH_POLL_S)

    async def _pump_logs(self, proc: asyncio.subprocess.Process) -> None:
        """Forward the server's output to loguru at debug level (never let the pipe fill up)."""
        assert proc.stdout is not None
        pending = b""
        while True:
            data = await proc.stdout.read(65536)
            if not data:
                self._log_line(pending)
                return
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                self._log_line(line)
            if len(pending) > 65536:  # an endless line: log what we have
                self._log_line(pending)
                pending = b""

    def _log_line(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip()
        if line:
            self._log_tail.append(line)
            logger.debug("llama-server: {}", line)

    async def _drain_logs(self) -> None:
        if self._log_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._log_task), 1.0)

    async def _terminate(self) -> None:
        """Stop the current process and its log pump (safe to re-run if interrupted)."""
        proc = self._proc
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT_S)
                except TimeoutError:
                    logger.warning(f"local LLM server (pid {proc.pid}) ignored SIGTERM; killing it")
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
            if self._proc is proc:
                self._proc = None
        log_task = self._log_task
        if log_task is not None:
            log_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await log_task
            if self._log_task is log_task:
                self._log_task = None

    async def _watch(self) -> None:
        """Restart the server whenever it dies, with bounded attempts and backoff."""
        failures = 0
        while not self._stopping:
            proc = self._proc
            if proc is None:
                return
            code = await proc.wait()
            self._ready.clear()
            if self._stopping:
                return
            await self._drain_logs()
            lived = time.monotonic() - self._started_at
            failures = 1 if lived > _STABLE_AFTER_S else failures + 1
            tail = "\n".join(list(self._log_tail)[-10:])
            logger.warning(f"local LLM server died (code {code}, after {lived:.0f} s):\n{tail}")
            await self._terminate()
            while not self._stopping:
                if failures > self.max_restarts:
                    logger.error(
                        f"local LLM server died {failures} times in a row; giving up "
                        "(LLM requests will fail until the agent is restarted)"
                    )
                    return
                await asyncio.sleep(min(0.5 * 2 ** (failures - 1), 10.0))
                self.restarts += 1
                logger.warning(f"restarting local LLM server (restart #{self.restarts})")
                try:
                    await self._spawn_and_wait()
                    if self._warm_payload is not None:
                        await self._post_warm_up(self._warm_payload)
                except LlamaServerError as e:
                    failures += 1
                    logger.error(f"local LLM server restart failed: {e}")
                    await self._terminate()
                    continue
                self._ready.set()
                logger.info(f"local LLM server restarted at {self.base_url} (pid {self.pid})")
                break
