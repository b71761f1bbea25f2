"""Start a test's fake server (an aiohttp app) on 127.0.0.1 at a free port."""

from __future__ import annotations

from aiohttp import web


async def start_loopback(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on 127.0.0.1; returns its runner (``await runner.cleanup()``) and port."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]
