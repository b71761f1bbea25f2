"""``GET /healthz`` (the worker's load, for a load balancer) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from loguru import logger

from voiceagent.server.admission import Admission
from voiceagent.server.loop_lag import LoopLag
from voiceagent.server.metrics import MULTIPROCESS_REFRESH_S, ServerMetrics, multiprocess_dir
from voiceagent.server.registry import CallRegistry
from voiceagent.storage.archive import CallArchive


def add_health_routes(
    app: web.Application,
    *,
    registry: CallRegistry,
    metrics: ServerMetrics,
    admission: Admission,
    lag: LoopLag,
    archive: CallArchive | None,
    signatures_checked: bool,
) -> None:
    """Register ``/healthz`` and ``/metrics``.

    ``/healthz`` answers 200 while the worker takes new calls, 503 with ``"status": "busy"``
    past its capacity (or ``"draining"`` at shutdown), with the load either way. ``/metrics``
    is ``metrics.registry`` in Prometheus text (or OpenMetrics, when the scraper asks for it);
    in multiprocess mode the live figures are also written every ``MULTIPROCESS_REFRESH_S``.
    """

    def refresh() -> None:
        metrics.refresh(
            registry.calls,
            accepting=registry.accepting,
            load=admission.load(),
            worst_lag_s=lag.worst_s,
            recording_write_errors=archive.write_errors if archive is not None else 0,
        )

    async def healthz(_request: web.Request) -> web.Response:
        load = admission.load()
        status = "draining" if not registry.accepting else "busy" if load.refusing else "ok"
        return web.json_response(
            {
                "status": status,
                "active_calls": load.active_calls,
                "max_calls": load.max_calls,
                "reserved_calls": load.reserved,
                "loop_lag_ms": load.loop_lag_ms,
                "refusing": load.refusing,
                "accepting_calls": status == "ok",
                "calls_total": metrics.calls_total,
                "signatures_checked": signatures_checked,
                "uptime_s": round(metrics.uptime_s(), 3),
                "pid": os.getpid(),
            },
            status=200 if status == "ok" else 503,
        )

    async def metrics_view(request: web.Request) -> web.Response:
        refresh()
        body, content_type = metrics.exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def refresh_periodically(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_every(MULTIPROCESS_REFRESH_S, refresh))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    if multiprocess_dir() is not None:  # a scrape reaches one worker: the others write theirs
        app.cleanup_ctx.append(refresh_periodically)


async def _every(interval_s: float, action: Callable[[], None]) -> None:
    while True:
        try:
            action()
        except Exception as e:  # the figures go stale; the server goes on
            logger.warning(f"refreshing the metrics failed: {e!r}")
        await asyncio.sleep(interval_s)
