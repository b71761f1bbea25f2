"""The local LLM server's supervisor: "ready" means a live server, never a dead one's stale flag."""

from __future__ import annotations

import asyncio
import sys

import pytest

from voiceagent.services.local.llama_process import LlamaProcess


async def test_wait_ready_does_not_return_for_a_server_that_died_before_the_watchdog_saw_it():
    # The server answered its health check (ready), then was killed; its exit is known to asyncio
    # but the watchdog has not run yet, so the ready flag is still up.
    supervisor = LlamaProcess(python=sys.executable, startup_timeout_s=5, max_restarts=1)
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    supervisor._proc = dead
    supervisor._ready.set()
    assert not supervisor.ready
    with pytest.raises(TimeoutError):
        await supervisor.wait_ready(timeout=0.2)

    # The watchdog respawns it: a live process, ready again → wait_ready returns.
    live = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(5)")
    try:
        asyncio.get_running_loop().call_later(0.05, setattr, supervisor, "_proc", live)
        await supervisor.wait_ready(timeout=2.0)
        assert supervisor.ready
    finally:
        live.kill()
        await live.wait()
