"""``voiceagent serve --workers N``: N worker processes sharing one port, each its own event loop.

The parent binds nothing that serves: each worker binds the same host and port with
``SO_REUSEPORT`` (aiohttp ``reuse_port=True``) and the kernel spreads new connections over
them, so a call (its WebSocket) lives and ends in the worker that accepted it; calls never
migrate. Each worker builds its bot (models loaded once per worker) and runs
:func:`~voiceagent.server.app.run_server` with its own admission limit. SIGTERM or SIGINT to
the parent is passed to every worker, which drains its calls as a single server does; the
parent returns once all have stopped. A worker that dies on its own is logged and started
again (at most once per ``RESTART_MIN_S``), its calls lost with it. A parent that dies without
stopping them (SIGKILL, a crash) takes them along: each worker asks the kernel for SIGTERM at
its parent's death (Linux ``PR_SET_PDEATHSIG``) and drains as if told to stop, instead of
holding the port as an orphan.

Port 0 picks a free port first (held by a non-listening ``SO_REUSEPORT`` socket of the parent
until the workers listen), so every worker binds the same one.

``/metrics`` answers for all workers, whichever one a scrape reaches: the parent gives them one
directory for prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a temporary
one unless already set), clears a dead worker's live gauges, and removes its temporary directory
at the end (see :mod:`voiceagent.server.metrics`).
"""

from __future__ import annotations

import importlib
import importlib.util
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loguru import logger

from voiceagent.settings import Settings

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's multiprocess directory (its name; the module is not imported here)."""
RESTART_MIN_S = 10.0
STOP_TIMEOUT_EXTRA_S = 20.0
"""Beyond the drain's grace, how long a stopping worker may take before it is killed."""
READY_TIMEOUT_S = 300.0


def default_workers(settings: Settings) -> int:
    """One worker per core, or one when a stage needs a local model.

    Each worker loads its own models: several llama.cpp servers and Whispers do not fit next
    to each other on a few cores.
    """
    from voiceagent.pipelines.resources import choose_stages

    choice = choose_stages(settings)
    if any("local" in choice.chain(stage) for stage in ("stt", "llm", "tts")):
        return 1
    return os.cpu_count() or 1


def _import_bot_module(name: str) -> Any:
    """A module by dotted name, or a Python file by path (``examples/custom_bot.py``)."""
    if not name.endswith(".py"):
        return importlib.import_module(name)
    path = Path(name).resolve()
    if not path.is_file():
        raise ImportError(f"no such file: {path}")
    module_name = f"voiceagent_bot_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def load_bot_factory(spec: str) -> Callable[[Settings], Any]:
    """``module:attribute`` or ``path/to/file.py:attribute`` → the callable making the bot.

    Raises:
        ValueError: the spec is malformed or names nothing importable.
    """
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"--bot {spec!r}: expected module:factory or file.py:factory")
    try:
        target: Any = _import_bot_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, SyntaxError) as e:
        raise ValueError(f"--bot {spec!r}: cannot load it ({e})") from e
    if not callable(target):
        raise ValueError(f"--bot {spec!r} is not callable")
    return target


def reserve_port(host: str, port: int) -> tuple[socket.socket | None, int]:
    """For port 0, hold a free port with a non-listening ``SO_REUSEPORT`` socket.

    Raises:
        OSError: the address cannot be bound.
    """
    if port != 0:
        return None, port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host.strip("[]"), 0))
    return holder, int(holder.getsockname()[1])


def _stop_with_parent(parent_pid: int) -> None:
    """SIGTERM this process when the parent dies (Linux only; elsewhere a no-op).

    The stdlib has no portable "die with the parent"; ``prctl(PR_SET_PDEATHSIG)`` through ctypes
    is the kernel's own mechanism (no watcher thread). The parent may have died before the call:
    checked after it.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError) as e:  # an unusual libc: the worker just lacks the guard
        logger.warning(f"worker cannot follow its parent's death: {e}")
        return
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(
    settings_json: str,
    index: int,
    bot_spec: str,
    level: str,
    ready: Connection,
    metrics_dir: str | None = None,
    parent_pid: int | None = None,
) -> None:
    """One worker process: its bot and its server on the shared port."""
    import asyncio

    if metrics_dir is not None:
        # Before prometheus_client is imported: it picks its multiprocess values at import.
        if "prometheus_client" in sys.modules:
            raise RuntimeError("prometheus_client was imported before the metrics directory")
        os.environ[MULTIPROCESS_ENV] = metrics_dir

    logger.remove()
    logger.enable("voiceagent")  # the library is quiet unless the application asks (as the CLI)
    logger.add(
        sys.stderr,
        level=level,
        format=f"{{time:HH:mm:ss.SSS}} {{level: <7}} w{index} {{name}}: {{message}}",
    )
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if parent_pid is not None:
        _stop_with_parent(parent_pid)
    settings = Settings.model_validate_json(settings_json)

    async def serve() -> None:
        from voiceagent.server.app import run_server

        bot = load_bot_factory(bot_spec)(settings)
        try:
            await bot.start()
            await run_server(
                settings, bot, reuse_port=True, on_started=lambda port: ready.send(port)
            )
        finally:
            await bot.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    except Exception as e:
        logger.opt(exception=e).error(f"worker {index} failed: {e}")
        sys.exit(1)


class WorkerPool:
    """The parent: starts, restarts and stops the workers (see the module docstring)."""

    def __init__(self, settings: Settings, workers: int, bot_spec: str, log_level: str) -> None:
        self.settings = settings
        self.count = workers
        self.bot_spec = bot_spec
        self.log_level = log_level
        self._context = multiprocessing.get_context("spawn")
        self._procs: list[Any] = [None] * workers
        self._started_at = [0.0] * workers
        self._stopping = False
        self._metrics_dir: str | None = None
        self._own_metrics_dir = False

    def _start(self, index: int) -> Connection:
        receive, send = self._context.Pipe(duplex=False)
        settings_json = self.settings.model_dump_json()
        proc = self._context.Process(
            target=_worker_main,
            args=(
                settings_json,
                index,
                self.bot_spec,
                self.log_level,
                send,
                self._metrics_dir,
                os.getpid(),
            ),
            name=f"voiceagent-worker-{index}",
            daemon=False,
        )
        proc.start()
        send.close()
        self._procs[index] = proc
        self._started_at[index] = time.monotonic()
        return receive

    def run(self, on_started: Callable[[int], None] | None = None) -> int:
        """Serve until SIGTERM/SIGINT; return 0 when every worker stopped cleanly."""
        server = self.settings.server
        holder, port = reserve_port(server.host, server.port)
        self.settings = self.settings.model_copy(
            update={"server": server.model_copy(update={"port": port})}
        )
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        self._metrics_dir = os.environ.get(MULTIPROCESS_ENV) or None
        if self._metrics_dir is None:
            self._metrics_dir = tempfile.mkdtemp(prefix="voiceagent-metrics-")
            self._own_metrics_dir = True
        try:
            pipes = [self._start(i) for i in range(self.count)]
            self._wait_ready(pipes)
            if holder is not None:
                holder.close()
            if self._stopping:
                return self._stop_all()
            logger.info(f"voiceagent: {self.count} workers listening on {server.host}:{port}")
            if on_started is not None:
                on_started(port)
            while not self._stopping:
                time.sleep(0.2)
                self._restart_dead()
            return self._stop_all()
        finally:
            if holder is not None:
                holder.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._own_metrics_dir and self._metrics_dir is not None:
                shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _wait_ready(self, pipes: list[Connection]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for index, pipe in enumerate(pipes):
            while not self._stopping:
                if pipe.poll(0.2):
                    pipe.recv()
                    break
                proc = self._procs[index]
                if not proc.is_alive():
                    self._stopping = True
                    raise RuntimeError(f"worker {index} exited with {proc.exitcode} at start")
                if time.monotonic() > deadline:
                    self._stopping = True
                    raise RuntimeError(f"worker {index} not ready within {READY_TIMEOUT_S:.0f} s")
            pipe.close()

    def _restart_dead(self) -> None:
        for index, proc in enumerate(self._procs):
            if proc is None or proc.is_alive() or self._stopping:
                continue
            if time.monotonic() - self._started_at[index] < RESTART_MIN_S:
                continue
            logger.error(f"worker {index} (pid {proc.pid}) died with {proc.exitcode}; restarting")
            self._forget_metrics_of(proc.pid)
            self._start(index).close()

    def _forget_metrics_of(self, pid: int) -> None:
        """Drop a dead worker's live gauges (its counters stay in the totals)."""
        if self._metrics_dir is None:
            return
        from prometheus_client import multiprocess

        try:
            multiprocess.mark_process_dead(pid, self._metrics_dir)
        except OSError as e:
            logger.warning(f"metrics of dead worker pid {pid} not cleared: {e}")

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self._stopping:
            logger.info(f"{signal.Signals(signum).name}: stopping {self.count} workers")
        self._stopping = True

    def _stop_all(self) -> int:
        alive = [p for p in self._procs if p is not None and p.is_alive()]
        for proc in alive:
            os.kill(proc.pid, signal.SIGTERM)
        budget = self.settings.server.shutdown_grace_s + STOP_TIMEOUT_EXTRA_S
        deadline = time.monotonic() + budget
        for proc in alive:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                logger.error(f"worker pid {proc.pid} did not stop within {budget:.0f} s; killed")
                proc.kill()
                proc.join(5.0)
        failed = [p.exitcode for p in self._procs if p is not None and p.exitcode not in (0, None)]
        return 1 if failed else 0


_SIGNALS = (signal.SIGTERM, signal.SIGINT)
