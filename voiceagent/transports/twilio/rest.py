"""Twilio's REST API through the twilio SDK's async client: place, update and hang up calls.

Requests go through ``twilio.rest.Client`` with an ``AsyncTwilioHttpClient`` (``create_async``,
``update_async``), authenticated with HTTP basic auth (account sid, auth token). Twilio's
errors — JSON ``{"code", "message", "more_info", "status"}`` — arrive as the SDK's
``TwilioRestException`` and are turned into :class:`TwilioRestError`, whose ``kind`` names the
problem (``auth``, ``invalid_number``, ``rate_limited``, ``not_found``, ``timeout``,
``network``, ``http_<status>``) and whose message says what to do about it.

``hang_up`` never raises (the call ends anyway when the media socket closes); ``create_call``
and ``update_call`` raise :class:`TwilioRestError`. Every failure is logged once and counted
in :class:`TwilioRestStats`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from loguru import logger
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from voiceagent.settings import Settings

DEFAULT_API_BASE_URL = "https://api.twilio.com"
STATUS_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
"""The call progress events Twilio posts to a call's ``StatusCallback``."""

_INVALID_NUMBER_CODES = {
    21211: "invalid 'To' number",
    21212: "invalid 'From' number (caller id)",
    21214: "'To' number cannot be reached",
    21217: "the number does not appear to be valid",
    21210: "'From' number is not verified on this account",
    21219: "'To' number is not verified (trial account)",
    13223: "invalid phone number in <Dial>",
    13224: "invalid phone number in <Dial>",
}


class TwilioRestError(Exception):
    """A request to Twilio's REST API failed.

    Attributes:
        kind: ``auth``, ``invalid_number``, ``rate_limited``, ``not_found``, ``timeout``,
            ``network`` or ``http_<status>``.
        status: The HTTP status (None without a response).
        code: Twilio's error code (e.g. 20003, 21211, 20429), when Twilio sent one.
        detail: Twilio's own message (or the network error).
    """

    def __init__(
        self, kind: str, message: str, *, status: int | None = None, code: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.code = code
        self.detail = message


def rest_error(error: TwilioRestException) -> TwilioRestError:
    """Name the problem in one of Twilio's error answers and say what to do about it."""
    status, code = error.status, error.code if isinstance(error.code, int) else None
    detail = str(error.msg or "").removeprefix("Unable to create record: ")
    detail = detail.removeprefix("Unable to update record: ")
    tag = f"HTTP {status}" + (f", Twilio error {code}" if code else "")
    if status == 401 or code == 20003:
        return TwilioRestError(
            "auth",
            f"Twilio refused the credentials ({tag}: {detail}): check TWILIO_ACCOUNT_SID and "
            "TWILIO_AUTH_TOKEN",
            status=status,
            code=code,
        )
    if code in _INVALID_NUMBER_CODES:
        return TwilioRestError(
            "invalid_number",
            f"Twilio cannot dial it: {_INVALID_NUMBER_CODES[code]} ({tag}: {detail})",
            status=status,
            code=code,
        )
    if status == 429 or code == 20429:
        return TwilioRestError(
            "rate_limited",
            f"Twilio's rate limit was hit ({tag}: {detail}): too many requests at once; "
            "try again in a moment",
            status=status,
            code=code,
        )
    if status == 404 or code == 20404:
        return TwilioRestError(
            "not_found",
            f"Twilio does not know this call or account ({tag}: {detail}); the call may be over",
            status=status,
            code=code,
        )
    return TwilioRestError(
        f"http_{status}", f"Twilio refused the request ({tag}: {detail})", status=status, code=code
    )


@dataclass(frozen=True)
class RestCall:
    """A call as Twilio's REST API described it."""

    sid: str
    status: str
    to: str = ""
    from_: str = ""
    direction: str = ""
    duration_s: int | None = None
    created_at: float | None = None
    """Unix time Twilio created the call (``date_created``, whole seconds)."""


@dataclass
class TwilioRestStats:
    """Counters of REST requests (per client)."""

    hang_ups: int = 0
    created: int = 0
    updated: int = 0
    failures: int = 0
    failures_by_kind: dict[str, int] = field(default_factory=dict)


class _ApiHttpClient(AsyncTwilioHttpClient):
    """The SDK's async HTTP client, sent to ``base_url`` and with a whole-request timeout.

    Twilio documents a custom HTTP client as the way to point the SDK at another host; the
    SDK passes no timeout of its own, so without one a hung request would wait for aiohttp's
    five-minute default.
    """

    def __init__(self, base_url: str, timeout_s: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout_s)
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s

    async def request(  # noqa: D102 (the SDK's signature and docs)
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if url.startswith(DEFAULT_API_BASE_URL) and self._base_url != DEFAULT_API_BASE_URL:
            url = self._base_url + url[len(DEFAULT_API_BASE_URL) :]
        return await super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout or self._timeout_s,
            allow_redirects=allow_redirects,
        )


class TwilioRestClient:
    """Places, redirects and hangs up calls through the twilio SDK."""

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
        self._auth_token = auth_token
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

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[Client]:
        """An SDK client whose HTTP session lives for one operation (closed on every way out).

        A session per operation: calls make a handful of requests each, and a shared session
        would have to be opened on the right event loop and closed by whoever owns the client.
        """
        http = _ApiHttpClient(self.base_url, self.timeout_s)
        try:
            yield Client(self.account_sid, self._auth_token, http_client=http)
        finally:
            await http.close()

    async def _call(self, what: str, call_sid: str, operation: Any) -> Any:
        """Run ``operation(client)`` within the timeout; raise a :class:`TwilioRestError`."""
        try:
            async with asyncio.timeout(self.timeout_s), self._client() as client:
                return await operation(client)
        except TwilioRestException as e:
            error = rest_error(e)
        except TimeoutError:
            error = TwilioRestError("timeout", f"Twilio did not answer within {self.timeout_s} s")
        except (aiohttp.ClientError, OSError) as e:
            error = TwilioRestError("network", f"cannot reach Twilio at {self.base_url}: {e!r}")
        self._failed(what, call_sid, error)
        raise error

    async def create_call(self, **params: Any) -> RestCall:
        """``POST …/Calls.json``: place a call (``calls.create_async`` keyword arguments).

        Raises:
            TwilioRestError: Twilio refused it or could not be reached.
        """
        instance = await self._call(
            "placing a call", "", lambda client: client.calls.create_async(**params)
        )
        self.stats.created += 1
        return _rest_call(instance)

    async def fetch_call(self, call_sid: str) -> RestCall:
        """``GET …/Calls/{CallSid}.json``: the call's current status.

        Raises:
            TwilioRestError: Twilio refused (``not_found``) or could not be reached.
        """
        instance = await self._call(
            "fetching the call", call_sid, lambda client: client.calls(call_sid).fetch_async()
        )
        return _rest_call(instance)

    async def update_call(self, call_sid: str, **params: Any) -> RestCall:
        """``POST …/Calls/{CallSid}.json``: new TwiML, URL or status for a live call.

        Raises:
            TwilioRestError: Twilio refused it (e.g. the call is over) or could not be reached.
        """
        return await self._update(call_sid, "updating the call", params)

    async def _update(self, call_sid: str, what: str, params: dict[str, Any]) -> RestCall:
        instance = await self._call(
            what, call_sid, lambda client: client.calls(call_sid).update_async(**params)
        )
        self.stats.updated += 1
        return _rest_call(instance)

    async def hang_up(self, call_sid: str) -> bool:
        """End call ``call_sid`` now (``Status=completed``); whether Twilio accepted it."""
        if not call_sid:
            self._failed(
                "hanging up", "", TwilioRestError("no_call_sid", "the call has no call sid")
            )
            return False
        try:
            await self._update(call_sid, "hanging up", {"status": "completed"})
        except TwilioRestError:
            return False
        self.stats.hang_ups += 1
        logger.info(f"call {call_sid}: hung up through Twilio's REST API")
        return True

    def _failed(self, what: str, call_sid: str, error: TwilioRestError) -> None:
        self.stats.failures += 1
        kinds = self.stats.failures_by_kind
        kinds[error.kind] = kinds.get(error.kind, 0) + 1
        call = f"call {call_sid}: " if call_sid else ""
        logger.warning(f"{call}Twilio REST: {what} failed ({error.kind}): {error}")


def _rest_call(instance: Any) -> RestCall:
    duration = getattr(instance, "duration", None)
    created = getattr(instance, "date_created", None)
    return RestCall(
        sid=str(getattr(instance, "sid", "") or ""),
        status=str(getattr(instance, "status", "") or ""),
        to=str(getattr(instance, "to", "") or ""),
        from_=str(getattr(instance, "_from", "") or ""),
        direction=str(getattr(instance, "direction", "") or ""),
        duration_s=int(duration) if str(duration or "").isdigit() else None,
        created_at=created.timestamp() if hasattr(created, "timestamp") else None,
    )
