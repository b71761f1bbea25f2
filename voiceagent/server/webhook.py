"""``POST /twiml``: Twilio's voice webhook, answered with TwiML connecting the call's stream.

The answer is ``<Connect><Stream>`` to ``wss://PUBLIC_HOST/media`` with the call's parameters,
the busy answer past capacity (:mod:`voiceagent.server.admission`), 503 while shutting down, 403
on a bad signature and 400 without a usable host.
"""

from __future__ import annotations

from aiohttp import web
from loguru import logger

from voiceagent.server.admission import Admission
from voiceagent.server.endpoint import ServerParts, TwilioEndpoint
from voiceagent.server.signature import BadHostError, public_host
from voiceagent.server.twiml import (
    MEDIA_PATH,
    connect_stream_twiml,
    media_stream_url,
    stream_parameters,
)


class WebhookHandler(TwilioEndpoint):
    """``POST /twiml``: verify the signature, answer with ``<Connect><Stream>`` TwiML."""

    def __init__(self, parts: ServerParts, admission: Admission) -> None:
        """Answer for the server (``admission``: the busy answer past capacity)."""
        super().__init__(parts)
        self._admission = admission

    async def __call__(self, request: web.Request) -> web.Response:
        """Answer one call webhook (or refuse it: shutting down, bad signature or host, busy)."""
        refusal = self._draining(request, "a call webhook")
        if refusal is not None:
            return refusal
        form = await request.post() if request.method == "POST" else request.query
        params = form if request.method == "POST" else {}
        if not self._signed(request, params, websocket=False):
            return web.Response(status=403, text="invalid signature\n")
        try:
            host = public_host(request, self._settings.server.public_host)
        except BadHostError as e:
            self._metrics.reject("bad_host")
            logger.warning(f"call webhook from {request.remote}: {e}")
            return web.Response(status=400, text="no usable Host header\n")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        parameters = stream_parameters(fields)
        busy = self._admission.admit_webhook()
        if busy is not None:
            self._metrics.reject(f"busy_{busy}")
            logger.warning(
                f"call webhook: {parameters.get('CallSid', '?')} refused, worker {busy} "
                f"({self._registry.active_count} active calls): busy answer"
            )
            return web.Response(text=self._admission.busy_twiml(), content_type="text/xml")
        logger.info(
            f"call webhook: {parameters.get('CallSid', '?')} from {parameters.get('From', '?')} "
            f"to {parameters.get('To', '?')} → {media_stream_url(host)}"
        )
        body = connect_stream_twiml(media_stream_url(host, MEDIA_PATH), parameters)
        return web.Response(text=body, content_type="text/xml")
