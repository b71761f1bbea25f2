"""What every route Twilio calls shares: the server's settings, calls and metrics, two checks.

The voice webhook (``/twiml``), the Media Streams upgrade (``/media``) and the outbound calls'
callbacks (``/twilio/status``, ``/twilio/amd``) refuse new work while the server drains and
refuse requests without a valid ``X-Twilio-Signature`` (when an auth token is set), counting
each refusal in ``voiceagent_requests_rejected_total{reason}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from loguru import logger

from voiceagent.server.metrics import ServerMetrics
from voiceagent.server.registry import CallRegistry
from voiceagent.server.signature import SignatureVerifier
from voiceagent.settings import Settings


@dataclass(frozen=True)
class ServerParts:
    """One server's settings, calls, metrics and signature check (None: no auth token)."""

    settings: Settings
    registry: CallRegistry
    metrics: ServerMetrics
    verifier: SignatureVerifier | None


class TwilioEndpoint:
    """A route Twilio calls (subclassed by each handler)."""

    def __init__(self, parts: ServerParts) -> None:
        """Serve for the server ``parts`` describe."""
        self._settings = parts.settings
        self._registry = parts.registry
        self._metrics = parts.metrics
        self._verifier = parts.verifier

    def _draining(self, request: web.Request, what: str) -> web.Response | None:
        """503 while the server refuses new calls (logged and counted), else None."""
        if self._registry.accepting:
            return None
        self._metrics.reject("shutdown")
        logger.warning(f"refused {what} from {request.remote}: shutting down")
        return web.Response(status=503, text="shutting down\n")

    def _signed(self, request: web.Request, params: Mapping[str, str], *, websocket: bool) -> bool:
        """Whether Twilio signed the request (always, without a token); counts a refusal."""
        if self._verifier is None or self._verifier.verify_request(
            request, params, configured_host=self._settings.server.public_host, websocket=websocket
        ):
            return True
        self._metrics.reject("signature")
        return False
