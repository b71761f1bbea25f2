"""Deepgram's ``/v1/listen`` socket as deepgram-sdk opens it, without permessage-deflate.

The caller's audio is PCM16, which does not compress, yet deflating every message sent to
the STT was one of the largest per-call costs of a cloud call (``bench/load.py``'s profile).
deepgram-sdk's ``listen.v1.connect`` offers the extension and has no option to leave it out,
so :class:`ListenClient` opens the same socket itself — the same URL and query, the same
``Authorization: Token`` and session headers, the websockets client the SDK uses — with
``compression=None``, and hands pipecat the SDK's own ``AsyncV1SocketClient`` on it. A refused
handshake raises the SDK's ``ApiError`` with the HTTP status, as the SDK does.

pipecat's ``DeepgramSTTService`` makes its client in ``__init__``; the SDK's builds an HTTP
client with an SSL context of its own (the CA bundle read and parsed: most of a call's
pipeline build, on the event loop, at every call's start) that a live STT never uses.
:func:`pipecat_builds_listen_clients` has pipecat make a :class:`ListenClient` instead.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlencode

from deepgram._secure_logging import install_websocket_log_redaction
from deepgram.core.api_error import ApiError
from deepgram.listen.v1.socket_client import AsyncV1SocketClient
from deepgram.version import __version__ as sdk_version
from websockets.exceptions import InvalidHandshake
from websockets.legacy.client import connect as websocket_connect  # the SDK's client

LISTEN_PATH = "/v1/listen"
DEFAULT_URL = "wss://api.deepgram.com"


class ListenClient:
    """Stands in for pipecat's ``AsyncDeepgramClient``: ``client.listen.v1.connect(**query)``."""

    def __init__(self, base_url: str, api_key: str) -> None:
        """Create the client.

        Args:
            base_url: Deepgram's WebSocket base (``wss://api.deepgram.com``).
            api_key: Sent as ``Authorization: Token <key>``.
        """
        self.base_url = base_url.rstrip("/")
        self.headers = {
            "Authorization": f"Token {api_key}",
            "User-Agent": f"deepgram-sdk/{sdk_version} voiceagent",
            "x-deepgram-session-id": str(uuid.uuid4()),  # as the SDK's client sends
        }
        install_websocket_log_redaction()  # the key masked in websockets' debug logs, as the SDK

    @property
    def listen(self) -> ListenClient:
        """``client.listen`` (the SDK's namespace)."""
        return self

    @property
    def v1(self) -> ListenClient:
        """``client.listen.v1`` (the SDK's namespace)."""
        return self

    def url(self, query: dict[str, str | list[str]]) -> str:
        """The socket's URL for ``query`` (a list value repeats its parameter, as the SDK's)."""
        return f"{self.base_url}{LISTEN_PATH}?{urlencode(query, doseq=True)}"

    @asynccontextmanager
    async def connect(self, **query: str | list[str]) -> AsyncIterator[AsyncV1SocketClient]:
        """Open ``/v1/listen`` with ``query``; yields the SDK's socket client.

        Raises:
            ApiError: Deepgram answered the handshake with an HTTP status (401, 402, 429, ...).
        """
        try:
            async with websocket_connect(
                self.url(query), extra_headers=self.headers, compression=None
            ) as socket:
                yield AsyncV1SocketClient(websocket=socket)
        except InvalidHandshake as e:
            status = getattr(e, "status_code", None)
            if status is None:
                raise
            raise ApiError(
                status_code=status,
                headers=dict(getattr(e, "headers", None) or {}),  # Deepgram's answer
                body="Websocket initialized with invalid credentials."
                if status == 401
                else "Unexpected error when initializing websocket connection.",
            ) from e


def _listen_client(*, api_key: str, environment: Any = None) -> ListenClient:
    """What pipecat asks of ``AsyncDeepgramClient(api_key=..., environment=...)``."""
    base_url = getattr(environment, "production", None) or DEFAULT_URL
    return ListenClient(base_url, api_key)


@contextmanager
def pipecat_builds_listen_clients() -> Iterator[None]:
    """Within: pipecat's ``DeepgramSTTService.__init__`` makes a :class:`ListenClient`.

    Its module's ``AsyncDeepgramClient`` is swapped for the duration (``__init__`` runs to the
    end without yielding to the event loop, so nothing else sees the swap). pipecat is pinned
    to 1.14; a pipecat without that name is left alone (check the service's ``_client``).
    """
    from pipecat.services.deepgram import stt

    sdk_client = getattr(stt, "AsyncDeepgramClient", None)
    if sdk_client is None:
        yield
        return
    stt.AsyncDeepgramClient = _listen_client
    try:
        yield
    finally:
        stt.AsyncDeepgramClient = sdk_client
