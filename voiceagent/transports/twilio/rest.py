"""Twilio's REST API, the one request voiceagent makes: hang up a call.

``POST {base}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with the form body
``Status=completed``, HTTP basic auth (account sid, auth token). Twilio answers 200 with the
call's JSON; errors are JSON ``{"code", "message", "status", "more_info"}``.

A failure (network, timeout, an error status) is logged with the call sid, counted in
``TwilioRestStats`` and reported as ``False``: it never raises into the call, which ends
anyway when the pipeline closes the media socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp
from loguru import logger

from voiceagent.settings import Settings

DEFAULT_API_BASE_URL = "https://api.twilio.com"


@dataclass
class TwilioRestStats:
    """Counters of REST requests (per process)."""

    hang_ups: int = 0
    failures: int = 0
    failures_by_kind: dict[str, int] = field(default_factory=dict)


class TwilioRestClient:
    """Hangs up calls through Twilio's REST API."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_API_BASE_URL,
        timeout_s: float = 5.0,
    ) -> None:
        """Create the client (no connection is opened until a request).

        Args:
            account_sid: The account (``AC…``) the calls belong to; the basic-auth user.
            auth_token: The account's auth token; the basic-auth password.
            base_url: API root (tests point it at a fake server on 127.0.0.1).
            timeout_s: Whole-request timeout.

        Raises:
            ValueError: An empty account sid or token.
        """
        if not account_sid or not auth_token:
            raise ValueError("Twilio REST needs an account sid and an auth token")
        self.account_sid = account_sid
        self._auth = aiohttp.BasicAuth(account_sid, auth_token)
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.stats = TwilioRestStats()

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioRestClient | None:
        """The client for the configured credentials, or None when they are not set."""
        rest = settings.twilio
        token = settings.server.twilio_auth_token
        if not rest.account_sid or not token:
            return None
        return cls(rest.account_sid, token, base_url=rest.api_base_url, timeout_s=rest.timeout_s)

    def call_url(self, call_sid: str) -> str:
        """The REST resource of call ``call_sid``."""
        account, call = quote(self.account_sid, safe=""), quote(call_sid, safe="")
        return f"{self.base_url}/2010-04-01/Accounts/{account}/Calls/{call}.json"

    async def hang_up(self, call_sid: str) -> bool:
        """End call ``call_sid`` now (``Status=completed``); whether Twilio accepted it."""
        if not call_sid:
            self._failed("no_call_sid", call_sid, "the call has no call sid")
            return False
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(auth=self._auth, timeout=timeout) as session,
                session.post(self.call_url(call_sid), data={"Status": "completed"}) as resp,
            ):
                if resp.status >= 300:
                    body = (await resp.text())[:300]
                    self._failed(f"http_{resp.status}", call_sid, body)
                    return False
        except TimeoutError:
            self._failed("timeout", call_sid, f"no answer within {self.timeout_s:.1f} s")
            return False
        except (aiohttp.ClientError, OSError) as e:
            self._failed("network", call_sid, repr(e))
            return False
        self.stats.hang_ups += 1
        logger.info(f"call {call_sid}: hung up through Twilio's REST API")
        return True

    def _failed(self, kind: str, call_sid: str, detail: str) -> None:
        self.stats.failures += 1
        self.stats.failures_by_kind[kind] = self.stats.failures_by_kind.get(kind, 0) + 1
        logger.warning(f"call {call_sid or '?'}: Twilio REST hang-up failed ({kind}): {detail}")
