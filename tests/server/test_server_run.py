"""run_server: binding, refusing unsafe binds, SIGTERM drain and cancellation."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import pytest
from server_harness import Factory, TwilioLeg, settings_for

from voiceagent.server.app import check_security, is_loopback_host, run_server


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.2", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


async def test_public_bind_without_token_is_refused_before_binding(factory: Factory) -> None:
    with pytest.raises(ValueError, match="TWILIO_AUTH_TOKEN"):
        await run_server(settings_for(host="0.0.0.0"), factory)


def test_public_bind_is_allowed_with_a_token_or_insecure() -> None:
    check_security(settings_for(host="0.0.0.0", twilio_auth_token="t"))
    check_security(settings_for(host="0.0.0.0", insecure=True))
    check_security(settings_for(host="127.0.0.1"))


async def _start(settings, factory) -> tuple[asyncio.Task, int]:
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_server(settings, factory, ready=ready, on_started=port.set_result)
    )
    bound = await asyncio.wait_for(port, 5)
    assert ready.is_set() and bound > 0
    return task, bound


async def test_sigterm_refuses_new_calls_then_ends_the_active_one_within_grace(
    factory: Factory,
) -> None:
    grace = 0.6
    task, port = await _start(settings_for(shutdown_grace_s=grace), factory)
    async with aiohttp.ClientSession() as http:
        leg = TwilioLeg(
            await http.ws_connect(f"ws://127.0.0.1:{port}/media"), "CA" + "5" * 32, "+1"
        )
        await leg.connect_and_start()
        await leg.say(30)
        assert await leg.hear_media(3) >= 3

        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)  # ours
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.1)

        # Draining: the caller on the line keeps talking; nobody new gets in.
        assert (await http.post(f"http://127.0.0.1:{port}/twiml", data={})).status == 503
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"ws://127.0.0.1:{port}/media")
        assert refused.value.status == 503
        health = await http.get(f"http://127.0.0.1:{port}/healthz")
        assert health.status == 503 and (await health.json())["active_calls"] == 1
        assert not leg.ws.closed

        assert await leg.wait_closed(timeout=grace + 4.0) == 1001
        elapsed = loop.time() - t0
        assert grace - 0.05 <= elapsed < grace + 3.5
        await asyncio.wait_for(task, 5)  # run_server returns after the drain
    assert factory.calls[0].ended.is_set()


async def test_cancelling_the_server_ends_calls_at_once(factory: Factory) -> None:
    task, port = await _start(settings_for(shutdown_grace_s=30), factory)
    async with aiohttp.ClientSession() as http:
        leg = TwilioLeg(
            await http.ws_connect(f"ws://127.0.0.1:{port}/media"), "CA" + "6" * 32, "+1"
        )
        await leg.connect_and_start()
        await leg.say(5)
        task.cancel()
        assert await leg.wait_closed(timeout=4.0) == 1001
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


async def test_shutdown_while_a_pipeline_is_still_being_built() -> None:
    factory = Factory(build_delay_s=30.0)
    task, port = await _start(settings_for(shutdown_grace_s=0.2), factory)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{port}/media")
        leg = TwilioLeg(ws, "CA" + "8" * 32, "+1")
        await leg.connect_and_start()
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        assert await leg.wait_closed(timeout=3.0) == 1001
        await asyncio.wait_for(task, 5)


def test_one_worker_per_core_unless_a_stage_runs_a_local_model() -> None:
    from voiceagent.server.workers import default_workers
    from voiceagent.settings import Settings

    cloud = Settings(
        cloud={"deepgram_api_key": "k", "openai_api_key": "k"},
        fallback={"stt": [], "llm": [], "tts": []},
    )
    assert default_workers(cloud) == (os.cpu_count() or 1)
    assert default_workers(Settings(cloud={"deepgram_api_key": "k", "openai_api_key": "k"})) == 1
    assert default_workers(Settings()) == 1  # the offline stack


def test_a_wrong_bot_is_refused_with_its_reason() -> None:
    from voiceagent.server.workers import load_bot_factory

    with pytest.raises(ValueError, match="expected module:factory"):
        load_bot_factory("receptionist")
    with pytest.raises(ValueError, match="cannot load it"):
        load_bot_factory("voiceagent.pipelines.receptionist:NoSuchBot")
    assert load_bot_factory("voiceagent.pipelines.receptionist:ReceptionistBot").__name__ == (
        "ReceptionistBot"
    )


def test_a_bot_can_be_a_python_file(tmp_path) -> None:
    from voiceagent.server.workers import load_bot_factory

    bot = tmp_path / "my_bot.py"
    bot.write_text("def factory(settings):\n    return ('my bot', settings)\n")
    assert load_bot_factory(f"{bot}:factory")("s") == ("my bot", "s")
    with pytest.raises(ValueError, match="cannot load it .*no such file"):
        load_bot_factory(f"{tmp_path / 'missing.py'}:factory")
    broken = tmp_path / "broken_bot.py"
    broken.write_text("def factory(:\n")
    with pytest.raises(ValueError, match="cannot load it"):
        load_bot_factory(f"{broken}:factory")
    with pytest.raises(ValueError, match="cannot load it"):
        load_bot_factory(f"{bot}:nothing_here")
