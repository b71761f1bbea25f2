"""Signed links to the softphone page, so a public deployment is not an open microphone.

A link is ``/phone?exp=<unix seconds>&sig=<base64url HMAC-SHA256>`` over the path and the expiry.
The page hands ``exp`` and ``sig`` on to its socket (``/phone/ws``), which checks the same
signature: one link opens the page and places calls until it expires (a call already up goes
on). The key is ``settings.phone.link_secret``, else one derived from the Twilio auth token
(HMAC with a fixed label, so a link never doubles as a Twilio signature). The stdlib's ``hmac``
does the work; the comparison is constant-time (``hmac.compare_digest``).

``voiceagent phone-link`` prints a link.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import urlencode

from voiceagent.settings import Settings

PHONE_PATH = "/phone"
_KEY_LABEL = b"voiceagent phone link v1"
_MAX_SIG_CHARS = 64


def link_secret(settings: Settings) -> str | None:
    """The secret that signs phone links (None: links are not required)."""
    return settings.phone.link_secret or settings.server.twilio_auth_token or None


class PhoneLinks:
    """Signs and checks phone links with one secret. Clock-injected (``now``: unix seconds)."""

    def __init__(self, secret: str, *, now: Callable[[], float] = time.time) -> None:
        """Create the signer.

        Raises:
            ValueError: ``secret`` is empty.
        """
        if not secret:
            raise ValueError("a phone link secret must not be empty")
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self._now = now

    def _signature(self, expires: int) -> str:
        mac = hmac.new(self._key, f"{PHONE_PATH}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def sign(self, ttl_s: float) -> dict[str, str]:
        """The query parameters of a link valid for ``ttl_s`` seconds from now."""
        expires = int(self._now() + ttl_s)
        return {"exp": str(expires), "sig": self._signature(expires)}

    def link(self, base_url: str, ttl_s: float) -> str:
        """The full page URL (``base_url`` like ``https://example.com``) valid for ``ttl_s``."""
        return f"{base_url.rstrip('/')}{PHONE_PATH}?{urlencode(self.sign(ttl_s))}"

    def check(self, exp: str | None, sig: str | None) -> str | None:
        """Why the link is refused, or None when it is valid now.

        Reasons: ``"missing"``, ``"malformed"``, ``"invalid"`` (not signed with this secret),
        ``"expired"`` (signed, but its time is up).
        """
        if not exp or not sig:
            return "missing"
        if not exp.isdigit() or len(exp) > 12 or len(sig) > _MAX_SIG_CHARS:
            return "malformed"
        expected = self._signature(int(exp))
        if not hmac.compare_digest(expected.encode("ascii"), sig.encode("ascii", "replace")):
            return "invalid"
        if int(exp) < self._now():
            return "expired"
        return None


def page_base_url(settings: Settings) -> str:
    """Where the page is reached: ``https://PUBLIC_HOST``, else the bind address over http."""
    server = settings.server
    if server.public_host:
        host = server.public_host.strip().rstrip("/")
        return host if "://" in host else f"https://{host}"
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"http://{host}:{server.port}"


def add_phone_link_parser(sub: Any) -> None:
    """Add ``phone-link`` to the ``voiceagent`` sub-commands."""
    link = sub.add_parser("phone-link", help="print a signed, expiring link to the softphone page")
    link.add_argument(
        "--ttl", type=float, default=None, help="seconds the link stays valid (default: settings)"
    )
    link.add_argument(
        "--base-url",
        default=None,
        help="where the server is reached (default: https://PUBLIC_HOST, else http://HOST:PORT)",
    )


def run_phone_link_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Print the link; without a secret, the plain URL and why no signature is needed."""
    settings = Settings.from_env()
    base = args.base_url or page_base_url(settings)
    secret = link_secret(settings)
    if secret is None:
        print(f"{base}{PHONE_PATH}", file=out)
        print(
            "note: no TWILIO_AUTH_TOKEN or VOICEAGENT_PHONE__LINK_SECRET is set, so the page "
            "needs no signed link (the server then listens on loopback only)",
            file=sys.stderr,
        )
        return 0
    ttl = settings.phone.link_ttl_s if args.ttl is None else args.ttl
    if ttl <= 0:
        print("error: --ttl must be positive", file=sys.stderr)
        return 2
    print(PhoneLinks(secret).link(base, ttl), file=out)
    return 0
