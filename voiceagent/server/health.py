"""``GET /healthz`` (the worker's load, for a load balancer) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import os
from collections.abc import Callable

from aiohttp import web
from loguru import logger

from voiceagent.server.admission import Admission
from voiceagent.server.loop_lag import LoopLag
from voiceagent.server.metrics import ServerMetrics, render_load
from voiceagent.server.registry import CallRegistry
from voiceagent.storage.archive import CallArchive

_PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def add_health_routes(
    app: web.Application,
    *,
    registry: CallRegistry,
    metrics: ServerMetrics,
    admission: Admission,
    lag: LoopLag,
    archive: CallArchive | None,
    extra: Callable[[], str] | None,
    signatures_checked: bool,
) -> None:
    """Register ``/healthz`` and ``/metrics``.

    ``/healthz`` answers 200 while the worker takes new calls, 503 with ``"status": "busy"``
    past its capacity (or ``"draining"`` at shutdown), with the load either way. ``extra``
    (the pipeline factory's ``render_metrics``) adds its own series to ``/metrics``.
    """

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

    async def metrics_view(_request: web.Request) -> web.Response:
        text = metrics.render(registry.live_counts(), accepting=registry.accepting)
        text += render_load(admission.load(), lag.worst_s)
        if archive is not None:
            text += archive.render_metrics()
        if extra is not None:  # a factory may add its own series (e.g. turn-taking counters)
            try:
                text += extra()
            except Exception as e:
                logger.warning(f"pipeline factory metrics failed: {e}")
        return web.Response(body=text.encode(), headers={"Content-Type": _PROMETHEUS_CONTENT_TYPE})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
