"""The real server inside the current event loop, on loopback, for demos and evals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from voiceagent.server.app import PipelineFactory, run_server
from voiceagent.settings import Settings

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def loopback_settings(port: int = 0) -> Settings:
    """Settings from the environment, bound to 127.0.0.1: no public exposure, no signatures."""
    return Settings.from_env(server={"host": "127.0.0.1", "port": port, "twilio_auth_token": None})


@asynccontextmanager
async def serve_in_process(
    settings: Settings, factory: PipelineFactory, *, start_timeout_s: float = START_TIMEOUT_S
) -> AsyncIterator[str]:
    """Run ``run_server`` as a task of this loop; yield its Media Streams URL; stop it after.

    Raises:
        RuntimeError: the server did not start within ``start_timeout_s``.
        OSError, ValueError: the server's own start-up errors (bind, security check).
    """
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(run_server(settings, factory, on_started=port.set_result))
    try:
        done, _ = await asyncio.wait(
            {port, server}, timeout=start_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if port not in done:
            if server.done():
                server.result()  # raises the server's start-up error
            raise RuntimeError(f"the server did not start within {start_timeout_s:.0f} s")
        yield f"ws://127.0.0.1:{port.result()}/media"
    finally:
        server.cancel()
        await asyncio.wait({server}, timeout=STOP_TIMEOUT_S)
