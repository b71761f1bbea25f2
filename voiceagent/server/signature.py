"""X-Twilio-Signature checks for the voice webhook and the Media Streams upgrade.

Twilio signs the exact public URL it requested (plus the POST form for webhooks) with the
account auth token. Behind a proxy or tunnel the server sees another URL, so the public one
is rebuilt from ``settings.server.public_host`` / ``X-Forwarded-Host`` / ``Host`` and
``X-Forwarded-Proto``. The WebSocket upgrade is signed over ``wss://host/path`` with no params.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web
from loguru import logger
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_SCHEMES = ("https://", "http://", "wss://", "ws://")


class BadHostError(ValueError):
    """The request names no usable public host (missing or malformed Host header)."""


def _first(value: str | None) -> str | None:
    """First entry of a possibly comma-separated proxy header, stripped."""
    if not value:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None


def normalize_host(host: str) -> str:
    """Strip a scheme and trailing slash from a configured host ("https://x.io/" → "x.io")."""
    host = host.strip()
    for scheme in _SCHEMES:
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
            break
    return host.rstrip("/")


def public_host(request: web.Request, configured: str | None) -> str:
    """The host Twilio used: configured public host, else X-Forwarded-Host, else Host.

    Raises:
        BadHostError: when the host is missing or is not a plain ``name[:port]``.
    """
    host = normalize_host(configured) if configured else None
    host = host or _first(request.headers.get("X-Forwarded-Host")) or request.host
    if not host or not _HOST_RE.match(host):
        raise BadHostError(f"unusable public host {host!r}")
    return host


def public_url(request: web.Request, configured_host: str | None, *, websocket: bool) -> str:
    """Rebuild the URL Twilio requested (scheme from X-Forwarded-Proto, else the socket's).

    For the WebSocket upgrade the scheme is ``wss``/``ws`` (https→wss, http→ws).
    """
    scheme = (_first(request.headers.get("X-Forwarded-Proto")) or request.scheme).lower()
    secure = scheme in ("https", "wss")
    scheme = {(True, True): "wss", (True, False): "ws", (False, True): "https"}.get(
        (websocket, secure), "http"
    )
    return f"{scheme}://{public_host(request, configured_host)}{request.raw_path}"


def _secure_variant(url: str) -> str:
    for plain, secure in (("http://", "https://"), ("ws://", "wss://")):
        if url.startswith(plain):
            return secure + url[len(plain) :]
    return url


class SignatureVerifier:
    """Checks X-Twilio-Signature with the twilio SDK's constant-time ``RequestValidator``."""

    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise ValueError("a Twilio auth token is required to verify signatures")
        self._validator = RequestValidator(auth_token)

    def verify(
        self,
        url: str,
        params: Mapping[str, str] | None,
        signature: str | None,
        *,
        algorithm: str | None = None,
    ) -> bool:
        """True when ``signature`` signs ``url`` + ``params`` (with or without the default port).

        A proxy that terminates TLS without sending X-Forwarded-Proto makes the request look
        plain; the secure variant of the same URL is accepted too (Twilio only calls
        https/wss in production, and the host and path are still signed).
        """
        if not signature:
            return False
        candidates = [url]
        secure = _secure_variant(url)
        if secure != url:
            candidates.append(secure)
        try:
            return any(
                self._validator.validate(c, params or {}, signature, algorithm=algorithm)
                for c in candidates
            )
        except ValueError:  # unsupported algorithm named by the request
            return False

    def verify_request(
        self,
        request: web.Request,
        params: Mapping[str, str] | None,
        *,
        configured_host: str | None,
        websocket: bool,
    ) -> bool:
        """Verify an aiohttp request against its rebuilt public URL; logs why it fails."""
        try:
            url = public_url(request, configured_host, websocket=websocket)
        except BadHostError as e:
            logger.warning(f"signature check on {request.path}: {e}")
            return False
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        ok = self.verify(url, params, request.headers.get(SIGNATURE_HEADER), algorithm=algorithm)
        if not ok:
            peer = request.remote or "?"
            has_sig = SIGNATURE_HEADER in request.headers
            logger.warning(
                f"rejected {request.method} {request.path} from {peer}: "
                f"{'invalid' if has_sig else 'missing'} X-Twilio-Signature for {url}"
            )
        return ok
