"""The browser softphone: ``GET /phone`` (a page), ``/phone/static/*`` (its scripts), ``/phone/ws``.

The page places a call over one WebSocket speaking the Twilio Media Streams message format
(``connected``, ``start``, ``media``, ``mark`` echoes, ``stop``; ``media``, ``mark`` and ``clear``
back), so a browser call runs the same pipeline, transport, heard ledger, flood guard, limits,
recording and call record as a Twilio call. What differs:

- the server names the call (``BR…`` call sid, sent in a ``ready`` event before anything else;
  ``start`` must use it) and marks it in the call record: ``From`` ``client:browser`` (Twilio's
  way of naming a browser client), ``channel`` ``browser``, ``line`` the audio format;
- the socket's query picks the line format: ``?line=mulaw-8k`` (a phone line, default) or
  ``?line=pcm16-16k`` (wideband);
- the page is told the transcript and figures as they happen
  (:mod:`voiceagent.server.phone_events`).

Security, like ``/media``: with a secret (``phone.link_secret`` or the Twilio auth token) the
page and the socket need a signed, expiring link (:mod:`voiceagent.server.phone_links`; a bad
or expired one is refused with 403); without one the server is on loopback only (or was told
``--insecure``). The socket also refuses another site's page (its ``Origin`` must be this
server), so a page elsewhere cannot place calls through a visitor's browser.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from aiohttp import web
from loguru import logger
from pipecat.observers.base_observer import BaseObserver

from voiceagent.server.admission import Admission
from voiceagent.server.endpoint import ServerParts
from voiceagent.server.media import MediaCall, PipelineFactory
from voiceagent.server.metrics import ServerMetrics
from voiceagent.server.phone_events import PageEvents, page_message
from voiceagent.server.phone_links import PHONE_PATH, PhoneLinks, link_secret
from voiceagent.server.registry import CallRegistry
from voiceagent.server.signature import BadHostError, public_host
from voiceagent.server.stream_handler import MediaStreamHandler
from voiceagent.settings import Settings
from voiceagent.storage.archive import CallArchive
from voiceagent.transports.twilio.call import TwilioCall
from voiceagent.transports.twilio.line_format import LINE_FORMATS, MULAW_8K, LineFormat
from voiceagent.transports.twilio.serializer import AssignedStream
from voiceagent.web import STATIC_DIR, page_html

PHONE_SOCKET_PATH = f"{PHONE_PATH}/ws"
PHONE_STATIC_PATH = f"{PHONE_PATH}/static"
BROWSER_FROM = "client:browser"
"""The caller of a browser call, as Twilio names a browser (Voice SDK) client."""
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; media-src 'self' blob:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Permissions-Policy": "microphone=(self)",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class BrowserCall(MediaCall):
    """A call from the softphone page: server-named, marked as a browser call, told its events."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        settings: Settings,
        factory: PipelineFactory,
        metrics: ServerMetrics,
        archive: CallArchive | None,
        *,
        line_format: LineFormat,
    ) -> None:
        super().__init__(ws, settings, factory, metrics, archive)
        self.line_format = line_format
        self.assigned = AssignedStream(
            stream_sid=f"MZ{uuid.uuid4().hex}",
            call_sid=f"BR{uuid.uuid4().hex}",
            parameters={"From": BROWSER_FROM, "channel": "browser", "line": line_format.name},
        )

    def make_transport(self) -> TwilioCall:
        """The Media Streams transport in the page's line format, under the assigned identity."""
        server = self._settings.server
        return TwilioCall(
            self._send_text,
            settings=self._settings.transport,
            on_protocol_error=self._on_protocol_error,
            max_message_bytes=server.max_message_bytes,
            max_messages_per_s=server.max_messages_per_s,
            line_format=self.line_format,
            assigned=self.assigned,
        )

    def observers(self, call: TwilioCall) -> list[BaseObserver]:
        """The page's transcript and figures (see :mod:`voiceagent.server.phone_events`)."""
        return [PageEvents(self._send_text, self.assigned.call_sid)]

    async def run(self) -> None:
        """Tell the page its call's identity, then run the call like any other."""
        ready = page_message(
            "ready",
            callSid=self.assigned.call_sid,
            streamSid=self.assigned.stream_sid,
            mediaFormat=self.line_format.media_format(),
        )
        try:
            await self._ws.send_str(ready)
        except ConnectionError as e:
            logger.debug(f"browser call {self.assigned.call_sid}: page gone before ready: {e!r}")
        logger.info(f"browser call {self.assigned.call_sid}: {self.line_format.name}")
        await super().run()


class _LinkCheck:
    """The signed-link check shared by the page and its socket (none without a secret)."""

    def __init__(self, settings: Settings, metrics: ServerMetrics) -> None:
        secret = link_secret(settings)
        self.links = PhoneLinks(secret) if secret else None
        self._metrics = metrics

    def refuse(self, request: web.Request) -> str | None:
        """Why the request's link is refused, or None."""
        if self.links is None:
            return None
        problem = self.links.check(request.query.get("exp"), request.query.get("sig"))
        if problem is not None:
            self._metrics.reject("phone_link")
            logger.warning(f"refused {request.path} from {request.remote}: {problem} phone link")
        return problem


class PhoneSocketHandler(MediaStreamHandler):
    """``GET /phone/ws``: the page's call, checked by link and origin (not Twilio's signature)."""

    def __init__(self, *args, link_check: _LinkCheck, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._link_check = link_check

    def refuse(self, request: web.Request) -> web.Response | None:
        """403 for another site's page or a bad link, 400 for an unknown line format."""
        if not _same_origin(request, self._settings.server.public_host):
            self._metrics.reject("phone_origin")
            logger.warning(
                f"refused {request.path} from {request.remote}: page of another origin "
                f"({request.headers.get('Origin', '')[:80]!r})"
            )
            return web.Response(status=403, text="cross-origin call refused\n")
        problem = self._link_check.refuse(request)
        if problem is not None:
            return web.Response(status=403, text=f"{problem} phone link\n")
        line = request.query.get("line", MULAW_8K.name)
        if line not in LINE_FORMATS:
            return web.Response(
                status=400, text=f"unknown line {line[:40]!r}; use one of {sorted(LINE_FORMATS)}\n"
            )
        return None

    def new_call(self, ws: web.WebSocketResponse, request: web.Request) -> MediaCall:
        """A :class:`BrowserCall` in the line format the page asked for."""
        line_format = LINE_FORMATS[request.query.get("line", MULAW_8K.name)]
        return BrowserCall(
            ws, self._settings, self._factory, self._metrics, self._archive, line_format=line_format
        )


def _same_origin(request: web.Request, configured_host: str | None) -> bool:
    """A browser names the page's origin on a WebSocket upgrade: it must be this server.

    Clients that are not browsers send no ``Origin`` (they cannot be made to call by a page).
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        return urlsplit(origin).netloc.lower() == public_host(request, configured_host).lower()
    except (BadHostError, ValueError):
        return False


def add_phone_routes(
    app: web.Application,
    settings: Settings,
    factory: PipelineFactory,
    *,
    registry: CallRegistry,
    metrics: ServerMetrics,
    archive: CallArchive | None,
    admission: Admission,
) -> None:
    """Register ``/phone``, ``/phone/static/`` and ``/phone/ws`` (unless ``phone.enabled``).

    Browser calls count against the worker's admission like Twilio's.
    """
    if not settings.phone.enabled:
        return
    link_check = _LinkCheck(settings, metrics)
    socket = PhoneSocketHandler(
        ServerParts(settings, registry, metrics, verifier=None),
        factory,
        admission=admission,
        archive=archive,
        link_check=link_check,
    )
    html = page_html()

    async def page(request: web.Request) -> web.Response:
        problem = link_check.refuse(request)
        if problem is not None:
            text = (
                f"This phone link is {problem}. Ask for a new one (voiceagent phone-link).\n"
                if problem != "missing"
                else "This page needs a signed link: run `voiceagent phone-link`.\n"
            )
            return web.Response(status=403, text=text, headers={"Cache-Control": "no-store"})
        return web.Response(text=html, content_type="text/html", headers=_PAGE_HEADERS)

    app.router.add_get(PHONE_PATH, page)
    app.router.add_static(PHONE_STATIC_PATH, STATIC_DIR, append_version=False)
    app.router.add_get(PHONE_SOCKET_PATH, socket)
