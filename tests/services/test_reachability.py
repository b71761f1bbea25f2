"""A wrong provider URL is said at startup: its shape as an error, silence as a warning."""

from __future__ import annotations

import asyncio
import socket

import pytest
from loguru import logger

from voiceagent.services.reachability import check_url, probe, warn_unreachable
from voiceagent.settings import Settings


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_base_url_without_scheme_or_host_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match="OPENAI_BASE_URL 'localhost:8000/v1' must start with"):
        Settings.from_env({"OPENAI_BASE_URL": "localhost:8000/v1"})
    with pytest.raises(ValueError, match="e.g. wss://api.deepgram.com"):
        Settings.from_env({"VOICEAGENT_CLOUD__DEEPGRAM_URL": "https://api.deepgram.com"})
    assert "not a URL" in check_url("http://h:99999/v1", ("http",), "X", "http://h/v1")
    assert check_url("https://api.openai.com/v1", ("http", "https"), "X", "") is None
    assert Settings.from_env(
        {"VOICEAGENT_CLOUD__DEEPGRAM_URL": "ws://h:1/"}
    ).cloud.deepgram_url == ("ws://h:1")


async def test_a_refused_port_is_named_and_a_listening_one_passes() -> None:
    port = _refused_port()
    assert "refused" in (await probe(f"http://127.0.0.1:{port}/v1")).lower()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        open_port = server.sockets[0].getsockname()[1]
        assert await probe(f"ws://127.0.0.1:{open_port}") is None
    finally:
        server.close()
        await server.wait_closed()


async def test_a_wrong_openai_base_url_is_a_warning_at_startup() -> None:
    lines: list[str] = []
    handler = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        settings = Settings.from_env(
            {"OPENAI_BASE_URL": f"http://127.0.0.1:{_refused_port()}/v1", "OPENAI_API_KEY": "k"}
        )
        warnings = await warn_unreachable(settings)
    finally:
        logger.remove(handler)
    assert len(warnings) == 1 and warnings[0].startswith("OPENAI_BASE_URL=http://127.0.0.1:")
    assert "not reachable" in lines[0] and "fallback" in lines[0]
    assert await warn_unreachable(Settings.from_env({})) == []  # the offline stack: no probe
