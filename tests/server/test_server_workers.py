"""``voiceagent serve --workers 2``: two processes share the port, each call stays in the worker
that took it, SIGTERM drains both, and both record into the one call store."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_harness import TwilioLeg

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MIN_CALLS = 4
MAX_CALLS = 30
MAX_CALLS_PER_WORKER = 25
"""``server.max_calls``: each worker admits that many."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _metrics(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """One scrape of ``/metrics``, parsed by prometheus_client: sample name → value."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


async def _health(session: aiohttp.ClientSession, port: int) -> dict | None:
    try:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            return await response.json()
    except aiohttp.ClientError:
        return None


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Where both workers record: one SQLite file, or one PostgreSQL database."""
    env = {"VOICEAGENT_STORAGE__DIR": str(tmp_path / "calls")}
    if request.param == "postgres":
        env["VOICEAGENT_STORAGE__URL"] = request.getfixturevalue("postgres_url")
    return env


async def test_two_workers_share_the_port_keep_their_calls_and_drain_on_sigterm(store_env):
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VOICEAGENT_")},
        **store_env,
        "VOICEAGENT_SERVER__SHUTDOWN_GRACE_S": "1",
        "VOICEAGENT_SERVER__MAX_CALLS": str(MAX_CALLS_PER_WORKER),
    }
    cmd = [sys.executable, "-m", "voiceagent.cli", "serve", "--workers", "2", "--port", str(port)]
    cmd += ["--bot", "tests.server.worker_bot:EchoBot"]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert "2 workers" in server.stdout.readline()  # printed once both listen
        # A new connection per request, as callers from many places make: the kernel picks a
        # worker per connection.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True)
        ) as session:
            pids = set()
            for _ in range(60):
                pids.add((await _health(session, port))["pid"])
            assert len(pids) == 2 and server.pid not in pids

            legs = []
            busy: dict[int, int] = {}  # worker pid → its active calls, as it reports them
            while len(legs) < MIN_CALLS or (len(busy) < 2 and len(legs) < MAX_CALLS):
                n = len(legs)
                ws = await session.ws_connect(f"ws://127.0.0.1:{port}/media")
                leg = TwilioLeg(ws, f"CA{n:032d}", f"+1555000{n}")
                await leg.connect_and_start()
                legs.append(leg)
                for _ in range(20):
                    health = await _health(session, port)
                    if health["active_calls"]:
                        busy[health["pid"]] = health["active_calls"]
            assert sorted(busy) == sorted(pids)  # the kernel spread the calls over both
            for leg in legs:
                await leg.say(10)
            assert [await leg.hear_media(5) >= 5 for leg in legs] == [True] * len(legs)
            for _ in range(60):
                health = await _health(session, port)
                busy[health["pid"]] = health["active_calls"]
            assert sum(busy.values()) == len(legs)
            # /metrics answers for both workers, whichever one a scrape reaches.
            scrapes = [await _metrics(session, port) for _ in range(20)]
            assert {m["voiceagent_calls_total"] for m in scrapes} == {len(legs)}
            assert {m["voiceagent_max_calls"] for m in scrapes} == {2 * MAX_CALLS_PER_WORKER}
            for _ in range(50):  # each worker writes its live gauges every second
                if (await _metrics(session, port))["voiceagent_active_calls"] == len(legs):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("active calls never summed over both workers")

            server.send_signal(signal.SIGTERM)
            codes = await asyncio.gather(*(leg.wait_closed(timeout=10.0) for leg in legs))
            assert codes == [1001] * len(legs)  # ended by the drain, after the grace
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    listing = subprocess.run(
        [sys.executable, "-m", "voiceagent.cli", "calls", "--limit", "50"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sum(f"CA{n:032d}" in listing for n in range(len(legs))) == len(legs)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_workers_whose_parent_is_killed_stop_instead_of_holding_the_port(tmp_path: Path):
    """The parent dies by SIGKILL (no chance to stop them): the workers drain and exit."""
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VOICEAGENT_")},
        "VOICEAGENT_STORAGE__DIR": str(tmp_path / "calls"),
        "VOICEAGENT_SERVER__SHUTDOWN_GRACE_S": "1",
    }
    cmd = [sys.executable, "-m", "voiceagent.cli", "serve", "--workers", "2", "--port", str(port)]
    cmd += ["--bot", "tests.server.worker_bot:EchoBot"]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert "2 workers" in server.stdout.readline()
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True)
        ) as session:
            pids = set()
            for _ in range(60):
                pids.add((await _health(session, port))["pid"])
        assert len(pids) == 2
        server.kill()
        server.wait()
        for _ in range(300):  # bounded: 30 s
            if not any(_alive(pid) for pid in pids):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"workers {pids} outlived their killed parent")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for pid in pids if "pids" in locals() else ():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
