"""The local LLM server's child process: spawn, health wait, log tail, terminate, watchdog.

The server (``llama_cpp.server``) runs through a small bootstrap that also makes the child exit
when its stdin closes, so a crashed or killed agent process never leaves a 650 MB orphan holding
the port. Its output is pumped to loguru at debug level and the last lines are kept for error
messages. Health is checked over HTTP only at start; afterwards the watchdog watches the
process, never polls the API, and restarts it (same command, bounded attempts with backoff)
if it dies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from collections.abc import Awaitable, Callable

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


class LlamaProcess:
    """One supervised ``llama_cpp.server`` child process, restarted by a watchdog when it dies.

    Attributes:
        restarts: How many times the watchdog respawned the server after it died.
    """

    def __init__(
        self,
        *,
        python: str,
        startup_timeout_s: float,
        max_restarts: int,
        on_restarted: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Configure the supervisor; nothing runs until :meth:`start`.

        Args:
            python: Interpreter that has ``llama-cpp-python[server]`` installed.
            startup_timeout_s: How long the model may take to load and answer its first request.
            max_restarts: Consecutive failed lives (each shorter than a minute) after which the
                watchdog gives up.
            on_restarted: Run after each respawn, before the server counts as ready again
                (e.g. re-warming the prompt); a ``LlamaServerError`` counts as a failed restart.
        """
        self.python = python
        self.startup_timeout_s = startup_timeout_s
        self.max_restarts = max_restarts
        self.restarts = 0
        self._on_restarted = on_restarted
        self._server_args: list[str] = []
        self._base_url = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._log_task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._log_tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL_LINES)
        self._stopping = False
        self._started_at = 0.0
        self._ready = asyncio.Event()

    @property
    def pid(self) -> int | None:
        """Process id of the running server, if any."""
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def ready(self) -> bool:
        """Whether the server is up and answered its health check (false while restarting)."""
        return self._ready.is_set() and self.running

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the server is ready (e.g. after a watchdog restart).

        Raises:
            TimeoutError: Not ready within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not self.ready:
                if self._ready.is_set():  # it died; the watchdog has yet to see it and clear this
                    await asyncio.sleep(0.01)
                else:
                    await self._ready.wait()

    def recent_output(self) -> list[str]:
        """The server's last output lines (also logged at debug level)."""
        return list(self._log_tail)

    async def start(self, server_args: list[str], base_url: str) -> None:
        """Spawn the server, wait until ``base_url`` answers, and start the watchdog.

        Args:
            server_args: The arguments of ``python -m llama_cpp.server``.
            base_url: The server's ``.../v1`` URL (its health check is ``GET /models``).

        Raises:
            LlamaServerError: The process could not be spawned, exited, or did not become
                healthy within ``startup_timeout_s`` (the message carries its last log lines).
        """
        self._server_args = list(server_args)
        self._base_url = base_url
        self._stopping = False
        await self._spawn_and_wait()
        self._ready.set()
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

    # -- one life of the process ----------------------------------------------------------------

    async def _spawn_and_wait(self) -> None:
        """Spawn one server process and wait for its health; on failure leave nothing running."""
        self._log_tail.clear()
        # PASSIVE: llama.cpp's OpenMP workers sleep instead of spinning between requests, so
        # they do not steal the 2 cores from Whisper/Silero/Piper in the agent process.
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.python,
                "-c",
                _BOOTSTRAP,
                *self._server_args,
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
        url = f"{self._base_url}/models"
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

    # -- the watchdog -----------------------------------------------------------------------------

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
                    if self._on_restarted is not None:
                        await self._on_restarted()
                except LlamaServerError as e:
                    failures += 1
                    logger.error(f"local LLM server restart failed: {e}")
                    await self._terminate()
                    continue
                self._ready.set()
                logger.info(f"local LLM server restarted at {self._base_url} (pid {self.pid})")
                break
