"""The inbound side of a Media Streams socket: Twilio's messages fed to the call, within limits.

Our own per-message limit is below the one given to aiohttp (:func:`ws_hard_cap`), so an
oversized message is dropped and counted rather than closing the socket. An undecodable one
is dropped the same way; more than :data:`MAX_DROPPED_MESSAGES` of them, or the call's own
abuse verdict (``TwilioCall.should_close``), ends the call as abuse.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WebSocketError
from loguru import logger

from voiceagent.transports.twilio.call import TwilioCall

MIN_HARD_CAP_BYTES = 1 << 20
MAX_DROPPED_MESSAGES = 20
"""Oversized or undecodable messages a call may send before it is closed (1008)."""


def ws_hard_cap(max_message_bytes: int) -> int:
    """The limit given to aiohttp: above ours, so an oversized message is only dropped.

    Only a message above this cap makes aiohttp close the socket (1009).
    """
    return max(4 * max_message_bytes, MIN_HARD_CAP_BYTES)


class InboundReader:
    """Reads one call's socket and feeds each message to its ``TwilioCall``.

    Attributes:
        abuse: Why the reader gave up on the caller's messages, if it did.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        call: TwilioCall,
        *,
        max_message_bytes: int,
        label: Callable[[], str],
        on_protocol_error: Callable[[str], None],
    ) -> None:
        """Create the reader.

        Args:
            ws: The call's upgraded socket.
            call: The transport the messages are fed to.
            max_message_bytes: Larger messages are dropped (and counted).
            label: The call's name for log lines (its call sid once known).
            on_protocol_error: Counts one protocol error of the given kind.
        """
        self._ws = ws
        self._call = call
        self._limit = max_message_bytes
        self._label = label
        self._on_protocol_error = on_protocol_error
        self._dropped = 0
        self.abuse: str | None = None

    async def read(self) -> str:
        """Feed messages until the socket or the stream ends; return why reading ended.

        Returns:
            ``"stop"`` (Twilio ended the stream), ``"hangup"`` (the socket closed without
            ``stop``), ``"ws_error"`` or ``"abuse"``.
        """
        ws, call, limit = self._ws, self._call, self._limit
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT:
                data = msg.data
                if len(data) > limit:
                    if self._drop("too_large"):
                        return "abuse"
                    continue
                try:
                    text = data.decode("utf-8") if isinstance(data, bytes) else data
                except UnicodeDecodeError:
                    if self._drop("non_json"):
                        return "abuse"
                    continue
                await call.feed_text(text)
            elif kind is WSMsgType.BINARY:
                if len(msg.data) > limit:
                    if self._drop("too_large"):
                        return "abuse"
                    continue
                await call.feed_binary(msg.data)
            elif kind in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return "stop" if call.ended.is_set() else "hangup"
            elif kind is WSMsgType.ERROR:
                error = msg.data
                if isinstance(error, WebSocketError) and error.code == WSCloseCode.MESSAGE_TOO_BIG:
                    self._on_protocol_error("too_large")
                logger.warning(f"call {self._label()}: websocket error: {error!r}")
                return "ws_error"
            if call.should_close:
                return "abuse"
            if call.ended.is_set():
                return "stop"

    def _drop(self, kind: str) -> bool:
        """Count a message the server dropped itself; True once that is abuse."""
        self._on_protocol_error(kind)
        self._dropped += 1
        if self._dropped == 1:
            logger.warning(f"call {self._label()}: dropped an inbound message [{kind}]")
        if self._dropped > MAX_DROPPED_MESSAGES:
            self.abuse = f"too many dropped messages ({self._dropped}, last {kind})"
            return True
        return False
