"""The aiohttp application: Twilio voice webhook, Media Streams socket, health and metrics.

Routes: ``POST /twiml`` (TwiML connecting the call to ``wss://PUBLIC_HOST/media``, or the busy
answer past capacity), ``GET /media`` (refused before the upgrade while draining (503) or with a
bad signature (403), closed 1013 right after it past capacity; then one pipeline per call, see
:mod:`voiceagent.server.media`), ``POST /twilio/status`` and ``POST /twilio/amd`` (outbound
calls' progress and AMD result, see :mod:`voiceagent.server.callbacks`), ``GET /healthz``
(load: active calls, limit, event-loop lag; 503 while refusing new calls) and ``GET /metrics``
(``prometheus_client``: server, load and turn-taking series for any bot, see
:mod:`voiceagent.server.metrics`), and the browser softphone ``GET /phone``
(:mod:`voiceagent.server.phone`).
:func:`run_server` binds the socket, refuses an unauthenticated public bind, and drains calls
gracefully on SIGTERM/SIGINT. Admission: :mod:`voiceagent.server.admission`. The handlers:
:mod:`voiceagent.server.webhook` (``/twiml``), :mod:`voiceagent.server.stream_handler` (``/media``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web
from loguru import logger

from voiceagent.server.admission import Admission
from voiceagent.server.callbacks import TwilioCallbacks, add_callback_routes
from voiceagent.server.endpoint import ServerParts
from voiceagent.server.health import add_health_routes
from voiceagent.server.loop_lag import LoopLag
from voiceagent.server.media import PipelineFactory
from voiceagent.server.metrics import ServerMetrics
from voiceagent.server.phone import add_phone_routes
from voiceagent.server.registry import CallRegistry
from voiceagent.server.signature import SignatureVerifier
from voiceagent.server.stream_handler import MediaStreamHandler
from voiceagent.server.twiml import MEDIA_PATH
from voiceagent.server.webhook import WebhookHandler
from voiceagent.settings import Settings
from voiceagent.storage.archive import CallArchive
from voiceagent.telephony.records import ArchiveStatusSink

__all__ = [
    "MediaStreamHandler",
    "PipelineFactory",
    "create_app",
    "is_loopback_host",
    "run_server",
]

REGISTRY_KEY = web.AppKey("voiceagent_registry", CallRegistry)
METRICS_KEY = web.AppKey("voiceagent_metrics", ServerMetrics)
SETTINGS_KEY = web.AppKey("voiceagent_settings", Settings)
ARCHIVE_KEY = web.AppKey("voiceagent_archive", CallArchive)
ADMISSION_KEY = web.AppKey("voiceagent_admission", Admission)
CALLBACKS_KEY = web.AppKey("voiceagent_callbacks", TwilioCallbacks)
_WEBHOOK_MAX_BYTES = 64 * 1024
_HANDLER_SHUTDOWN_S = 5.0
"""After the drain, how long aiohttp waits for leftover handlers before cancelling them."""


def create_app(
    settings: Settings,
    pipeline_factory: PipelineFactory,
    *,
    registry: CallRegistry | None = None,
) -> web.Application:
    """Build the aiohttp application (routes, call registry, metrics on its own registry).

    Args:
        settings: All configuration; ``settings.server`` drives this module.
        pipeline_factory: Builds each call's processors between serializer and output.
        registry: Call bookkeeping to share (a new one by default); ``app[REGISTRY_KEY]``.

    With ``settings.storage.enabled`` every call is recorded into a :class:`CallArchive`
    (``app[ARCHIVE_KEY]``), closed with the app.
    """
    registry = registry if registry is not None else CallRegistry()
    metrics = ServerMetrics()
    token = settings.server.twilio_auth_token
    verifier = SignatureVerifier(token) if token else None
    app = web.Application(client_max_size=_WEBHOOK_MAX_BYTES)
    app[REGISTRY_KEY] = registry
    app[METRICS_KEY] = metrics
    app[SETTINGS_KEY] = settings
    lag = LoopLag()
    admission = Admission(settings.server, lambda: registry.active_count, lag)
    app[ADMISSION_KEY] = admission
    _run_alongside(app, lag.run)
    archive = CallArchive(settings.storage) if settings.storage.enabled else None
    if archive is not None:
        app[ARCHIVE_KEY] = archive

        async def close_archive(_app: web.Application) -> None:
            await archive.close()

        app.on_cleanup.append(close_archive)

    parts = ServerParts(settings, registry, metrics, verifier)
    webhook = WebhookHandler(parts, admission)
    media = MediaStreamHandler(parts, pipeline_factory, admission=admission, archive=archive)

    app.router.add_post("/twiml", webhook)
    app.router.add_get("/twiml", webhook)
    app.router.add_get(MEDIA_PATH, media)
    sink = ArchiveStatusSink(archive) if archive is not None else None
    callbacks = TwilioCallbacks(parts, sink=sink)
    app[CALLBACKS_KEY] = callbacks
    add_callback_routes(app, callbacks)
    add_health_routes(
        app,
        registry=registry,
        metrics=metrics,
        admission=admission,
        lag=lag,
        archive=archive,
        signatures_checked=verifier is not None,
    )
    add_phone_routes(
        app,
        settings,
        pipeline_factory,
        registry=registry,
        metrics=metrics,
        archive=archive,
        admission=admission,
    )
    return app


def _run_alongside(app: web.Application, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``run()`` as a task from the app's startup to its cleanup."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(context)


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost`` (the only binds safe without signatures)."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_security(settings: Settings) -> None:
    """Refuse a public bind without signature checks unless explicitly insecure."""
    server = settings.server
    if server.twilio_auth_token:
        return
    if not is_loopback_host(server.host) and not server.insecure:
        raise ValueError(
            f"refusing to listen on {server.host} without TWILIO_AUTH_TOKEN: anyone could "
            "place calls into the agent. Set TWILIO_AUTH_TOKEN, bind 127.0.0.1, or pass "
            "--insecure (VOICEAGENT_SERVER__INSECURE=1) to accept the risk."
        )
    logger.warning(
        "*** TWILIO_AUTH_TOKEN is not set: X-Twilio-Signature is NOT checked on /twiml and "
        f"/media, and /phone needs no signed link (listening on {server.host}). Do not expose "
        "this server publicly. ***"
    )


def _install_signal_handlers(stop: asyncio.Event) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            logger.debug(f"cannot handle {sig.name} here (not the main thread?)")
    return installed


async def run_server(
    settings: Settings,
    pipeline_factory: PipelineFactory,
    *,
    ready: asyncio.Event | None = None,
    on_started: Callable[[int], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGTERM/SIGINT (or cancellation), then drain calls and return.

    On a signal: new calls are refused (503), active calls get
    ``settings.server.shutdown_grace_s`` to finish, the rest are ended (EndFrame, close 1001).
    When the task running this is cancelled, calls are ended at once.

    Args:
        settings: Configuration; binds ``settings.server.host``/``port`` (port 0: any free).
        pipeline_factory: Builds each call's processors between serializer and output.
        ready: Set once the socket is bound.
        on_started: Called with the bound port once listening.
        reuse_port: Bind with ``SO_REUSEPORT``, sharing the port with other workers.

    Raises:
        ValueError: on a non-loopback bind without an auth token and without ``insecure``.
        OSError: when the address cannot be bound.
    """
    check_security(settings)
    registry = CallRegistry()
    app = create_app(settings, pipeline_factory, registry=registry)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=_HANDLER_SHUTDOWN_S
    )
    await runner.setup()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    cancelled = False
    try:
        site = web.TCPSite(
            runner, settings.server.host, settings.server.port, reuse_port=reuse_port or None
        )
        await site.start()
        port = int(runner.addresses[0][1])
        logger.info(f"voiceagent server listening on {settings.server.host}:{port}")
        installed = _install_signal_handlers(stop)
        if on_started is not None:
            on_started(port)
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
            logger.info(
                f"shutdown requested: refusing new calls, {registry.active_count} active, "
                f"grace {settings.server.shutdown_grace_s:.1f} s"
            )
        except asyncio.CancelledError:
            cancelled = True
    finally:
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)
        grace = 0.0 if cancelled else settings.server.shutdown_grace_s
        drain = asyncio.ensure_future(registry.end_all(grace))
        try:
            await asyncio.shield(drain)
        except asyncio.CancelledError:
            await drain
        await runner.cleanup()
        logger.info("voiceagent server stopped")
    if cancelled:
        raise asyncio.CancelledError
