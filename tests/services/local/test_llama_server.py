"""LlamaServer: the local llama.cpp server as a supervised child process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from voiceagent.services.local.llama_server import LlamaServer, LlamaServerError
from voiceagent.settings import AgentSettings, LocalModelSettings

SYSTEM = AgentSettings().system_prompt


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def ask(base_url: str, question: str, max_tokens: int = 16) -> tuple[str, float]:
    """One streamed chat completion; returns (reply, seconds to first token)."""
    reply, first, _ = await ask_full(base_url, question, max_tokens)
    return reply, first


async def ask_full(base_url: str, question: str, max_tokens: int) -> tuple[str, float, str | None]:
    """One streamed chat completion; returns (reply, seconds to first token, finish reason)."""
    payload = {
        "model": "local",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
        ],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
    }
    began = time.monotonic()
    first: float | None = None
    reply = ""
    finish: str | None = None
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session,
        session.post(f"{base_url}/chat/completions", json=payload) as resp,
    ):
        assert resp.status == 200, await resp.text()
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data: {"):
                continue
            choice = json.loads(line[6:])["choices"][0]
            delta = choice["delta"].get("content") or ""
            finish = choice.get("finish_reason") or finish
            if delta and first is None:
                first = time.monotonic() - began
            reply += delta
    assert first is not None, "no token streamed"
    return reply, first, finish


def prefix_hits(server: LlamaServer) -> list[int]:
    """Token counts of llama.cpp's "N prefix-match hit" lines seen so far."""
    return [
        int(line.split("Llama.generate:")[1].split()[0])
        for line in server.recent_output()
        if "prefix-match hit" in line
    ]


@pytest.fixture(scope="module")
def gguf() -> Path:
    from voiceagent.services.local.weights import resolve_llm_gguf

    return resolve_llm_gguf(LocalModelSettings())


async def test_missing_model_file_is_a_clear_error(tmp_path: Path):
    server = LlamaServer(tmp_path / "nope.gguf")
    with pytest.raises(LlamaServerError, match="not found"):
        await server.start()
    assert not server.running
    await server.stop()  # harmless


async def test_a_corrupt_model_fails_start_with_the_servers_output(tmp_path: Path):
    pytest.importorskip("llama_cpp.server")
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"this is not a gguf file" * 100)
    server = LlamaServer(bad, startup_timeout_s=60)
    with pytest.raises(LlamaServerError, match="exited with code"):
        await server.start()
    assert not server.running


@pytest.mark.models
async def test_start_health_warm_and_stop_leaves_no_process(gguf: Path):
    server = LlamaServer(gguf)
    async with server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        pid = server.pid
        assert pid is not None and pid_alive(pid)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.base_url}/models") as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["data"][0]["id"] == "local"

        # Caller's first turn without a warm-up pays the prompt's prefill.
        _, cold = await ask(server.base_url, "Do you have any openings on Tuesday?")
        await server.stop()
        assert not pid_alive(pid)

        await server.start()
        await server.warm_up(SYSTEM)
        hits_before = len(prefix_hits(server))
        reply, warm = await ask(server.base_url, "Do you have any openings on Tuesday?")
        assert reply.strip()
        # The first real turn reused the warmed system prompt (≥ 30 tokens of it).
        new_hits = prefix_hits(server)[hits_before:]
        assert new_hits and new_hits[0] >= 30
        print(f"TTFT cold {cold:.3f} s, after warm-up {warm:.3f} s")
        pid = server.pid
        port = server.port

    assert not server.running
    assert not pid_alive(pid)
    assert not port_open(port)
    await server.stop()  # idempotent


@pytest.mark.models
async def test_killed_server_is_restarted_by_the_watchdog(gguf: Path):
    async with LlamaServer(gguf) as server:
        await server.warm_up(SYSTEM)
        base_url, old_pid = server.base_url, server.pid
        os.kill(old_pid, signal.SIGKILL)

        deadline = time.monotonic() + 10
        while server.ready:
            assert time.monotonic() < deadline, "watchdog did not notice the death"
            await asyncio.sleep(0.05)
        await server.wait_ready(timeout=60)
        assert server.restarts == 1 and server.pid != old_pid
        assert server.base_url == base_url  # same port: clients keep working

        reply, _ = await ask(base_url, "What are your opening hours?")
        assert reply.strip()
        new_pid = server.pid
    assert not pid_alive(new_pid)


@pytest.mark.models
async def test_two_calls_asking_at_once_both_get_whole_replies(gguf: Path):
    # Two calls share one local server: the second request must queue, not cut the first
    # call's reply short (llama-cpp-python's default would end it with a bare [DONE]).
    async with LlamaServer(gguf) as server:
        first = asyncio.create_task(
            ask_full(server.base_url, "List the days of the week, one per sentence.", 40)
        )
        await asyncio.sleep(0.3)
        second = asyncio.create_task(ask_full(server.base_url, "Say hello.", 8))
        (reply_a, _, finish_a), (reply_b, _, finish_b) = await asyncio.gather(first, second)
        assert finish_a in ("stop", "length") and reply_a.strip()
        assert finish_b in ("stop", "length") and reply_b.strip()


_ORPHAN_SCRIPT = """
import asyncio, os, sys
from pathlib import Path
from voiceagent.services.local.llama_server import LlamaServer

async def main():
    server = LlamaServer(Path(sys.argv[1]))
    await server.start()
    print(server.pid, flush=True)
    os._exit(3)  # the agent process dies without stopping its server

asyncio.run(main())
"""


@pytest.mark.models
def test_server_exits_when_the_agent_process_dies(gguf: Path):
    repo = Path(__file__).resolve().parents[3]
    env = dict(os.environ, PYTHONPATH=f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    out = subprocess.run(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(gguf)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 3, out.stderr[-2000:]
    child = int(out.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 10
    while pid_alive(child):
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            pytest.fail("llama server outlived the agent process")
        time.sleep(0.1)
