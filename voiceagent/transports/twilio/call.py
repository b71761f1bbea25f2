"""TwilioCall: one call's Twilio transport, websocket-agnostic.

The server owns the websocket: it feeds every message to :meth:`TwilioCall.feed_text`
(or ``feed_binary``) and gives the call a ``send_text`` coroutine. The call exposes the
pipeline's first processor (:attr:`TwilioCall.serializer`) and last one
(:attr:`TwilioCall.output`), linked so mark echoes reach the playback ledger.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.settings import TransportSettings
from voiceagent.transports.twilio.line_format import MULAW_8K, LineFormat
from voiceagent.transports.twilio.output import TwilioOutput
from voiceagent.transports.twilio.serializer import AssignedStream, TwilioSerializer


class TwilioCall:
    """One call's transport: serializer (pipeline source) + output (pipeline sink), linked."""

    def __init__(
        self,
        send_text: Callable[[str], Awaitable[None]],
        *,
        settings: TransportSettings | None = None,
        clock: Clock = DEFAULT_CLOCK,
        on_protocol_error: Callable[[str], None] | None = None,
        max_message_bytes: int = 65536,
        max_messages_per_s: float = 200.0,
        burst: float = 100.0,
        line_format: LineFormat = MULAW_8K,
        assigned: AssignedStream | None = None,
    ) -> None:
        """Create the transport.

        Args:
            send_text: Sends one text message on the socket.
            settings: Pipeline rate and output lead.
            clock: Time source of pacing, flood control and the heard ledger.
            on_protocol_error: Counts one dropped inbound message of the given kind.
            max_message_bytes: Larger inbound messages are dropped.
            max_messages_per_s: Flood limit (token bucket rate; ``burst`` its depth).
            burst: Messages admitted at once above the rate.
            line_format: The stream's audio (Twilio: 8 kHz μ-law; a wideband leg: 16 kHz PCM16).
            assigned: The identity the server gave a stream it hosts (None for Twilio).
        """
        settings = settings or TransportSettings()
        self.line_format = line_format
        self.output = TwilioOutput(
            send_text, settings=settings, clock=clock, line_format=line_format
        )
        self.serializer = TwilioSerializer(
            settings=settings,
            clock=clock,
            output=self.output,
            on_protocol_error=on_protocol_error,
            max_message_bytes=max_message_bytes,
            max_messages_per_s=max_messages_per_s,
            burst=burst,
            line_format=line_format,
            assigned=assigned,
        )
        self.started = self.serializer.started
        self.ended = self.serializer.ended

    @property
    def stream_sid(self) -> str | None:
        """Twilio's stream SID, once ``start`` arrived."""
        return self.serializer.stream_sid

    @property
    def call_sid(self) -> str | None:
        """Twilio's call SID, once ``start`` arrived."""
        return self.serializer.call_sid

    @property
    def custom_parameters(self) -> dict[str, str]:
        """The TwiML ``<Parameter>`` values from ``start``."""
        return self.serializer.custom_parameters

    @property
    def frames_in(self) -> int:
        """Caller media messages received (valid, inbound track)."""
        return self.serializer.frames_in

    @property
    def frames_out(self) -> int:
        """Agent media messages sent (20 ms each)."""
        return self.output.frames_out

    @property
    def protocol_errors(self) -> dict[str, int]:
        """Dropped inbound messages per error kind."""
        return self.serializer.guard.counts

    @property
    def should_close(self) -> str | None:
        """Why the server should close the socket (code 1008), or ``None``."""
        return self.serializer.should_close

    async def feed_text(self, text: str) -> None:
        """One websocket text message. Never raises for bad input."""
        await self.serializer.receive_text(text)

    async def feed_binary(self, data: bytes) -> None:
        """Twilio never sends binary: counted as a ``binary`` error and dropped."""
        await self.serializer.receive_binary(data)

    async def close(self, reason: str = "socket_closed") -> None:
        """The socket closed (or the server is closing it): end the call's pipeline."""
        await self.serializer.end_call(reason)
