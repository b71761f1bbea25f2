"""``GET /media``: the Media Streams upgrade, its checks, and one call per connection.

Refused before the upgrade while draining (503) or with a bad signature (403), closed 1013 right
after it past capacity; then one :class:`~voiceagent.server.media.MediaCall` runs the call.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSCloseCode, web
from loguru import logger

from voiceagent.server.admission import BUSY_CLOSE_CODE, Admission
from voiceagent.server.endpoint import ServerParts, TwilioEndpoint
from voiceagent.server.media import (
    CALL_WIND_DOWN_S,
    WS_CLOSE_TIMEOUT_S,
    MediaCall,
    PipelineFactory,
    ws_hard_cap,
)
from voiceagent.storage.archive import CallArchive


class MediaStreamHandler(TwilioEndpoint):
    """``GET /media``: checks, upgrade, then one :class:`MediaCall` per connection.

    Another leg on the same protocol (the browser softphone) overrides :meth:`refuse` (its own
    checks) and :meth:`new_call` (its own kind of call); the rest is shared.
    """

    def __init__(
        self,
        parts: ServerParts,
        factory: PipelineFactory,
        *,
        admission: Admission,
        archive: CallArchive | None = None,
    ) -> None:
        """Serve calls through ``factory``'s pipelines, recorded into ``archive`` (if any)."""
        super().__init__(parts)
        self._factory = factory
        self._archive = archive
        self._admission = admission

    def refuse(self, request: web.Request) -> web.Response | None:
        """The answer refusing this upgrade (a bad Twilio signature: 403), or None."""
        if not self._signed(request, {}, websocket=True):
            return web.Response(status=403, text="invalid signature\n")
        return None

    def new_call(self, ws: web.WebSocketResponse, request: web.Request) -> MediaCall:
        """The call for an upgraded connection (a Twilio Media Stream)."""
        return MediaCall(
            ws,
            self._settings,
            self._factory,
            self._metrics,
            self._archive,
            mailbox=self._registry.take_mail,
        )

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        """Handle one Media Streams connection from upgrade to close."""
        refusal = self._draining(request, "a media stream")
        if refusal is None:
            refusal = self.refuse(request)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(
            max_msg_size=ws_hard_cap(self._settings.server.max_message_bytes),
            compress=False,
            decode_text=False,
            timeout=WS_CLOSE_TIMEOUT_S,
        )
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="expected a WebSocket upgrade\n")
        await ws.prepare(request)
        busy = self._admission.admit_stream()  # no await between this and register
        if busy is not None:
            self._metrics.reject(f"busy_{busy}")
            logger.warning(f"refused a media stream from {request.remote}: worker {busy}")
            await ws.close(code=BUSY_CLOSE_CODE, message=b"server at capacity, try again later")
            return ws
        media_call = self.new_call(ws, request)
        if not self._registry.register(media_call):
            self._metrics.reject("shutdown")
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutting down")
            return ws
        # The call runs in its own task: a dropped connection (aiohttp may cancel the handler)
        # is a hang-up that the call finishes cleanly, not a cancellation halfway through.
        run = asyncio.create_task(media_call.run(), name=f"media-call-{media_call.label}")
        try:
            await asyncio.shield(run)
        except asyncio.CancelledError:
            media_call.request_end("connection handler cancelled")
            await asyncio.wait({run}, timeout=CALL_WIND_DOWN_S)
            if not run.done():
                run.cancel()
            raise
        finally:
            self._registry.unregister(media_call)
        return ws
