"""TwilioSerializer: the pipeline source fed with Twilio Media Streams websocket messages.

The server hands every websocket message to :meth:`TwilioSerializer.receive_text` (or
``receive_binary``). Valid messages become pipecat frames pushed downstream: caller audio
(the stream's line format — Twilio's μ-law 8 kHz — → PCM16 at the pipeline rate through a
stateful resampler), DTMF, call start and end, mark echoes. A leg the server hosts itself
(the browser softphone) may carry wideband audio and gets its identity from the server
(:class:`AssignedStream`). Bad input is dropped, counted, and logged at most once per kind
every few seconds; a flood of errors asks the server to close the socket
(:attr:`TwilioSerializer.should_close`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.frames import (
    CallEndedFrame,
    CallStartedFrame,
    PlaybackMarkFrame,
    pass_caller_audio,
)
from voiceagent.settings import TransportSettings
from voiceagent.transports.twilio.codec import StreamResampler
from voiceagent.transports.twilio.inbound_guard import InboundGuard
from voiceagent.transports.twilio.line_format import MULAW_8K, LineFormat
from voiceagent.transports.twilio.protocol import (
    Connected,
    Dtmf,
    Inbound,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    check_media_format,
    parse_inbound,
)

if TYPE_CHECKING:
    from voiceagent.transports.twilio.output import TwilioOutput

INBOUND_TRACKS = frozenset(("inbound", "inbound_track"))


@dataclass(frozen=True)
class AssignedStream:
    """The identity the server gave a stream it hosts (Twilio names its own streams).

    ``start`` must name exactly these sids (else the call is closed as a protocol error), and
    ``parameters`` override the custom parameters it carries: the caller cannot unmark itself.
    """

    stream_sid: str
    call_sid: str
    parameters: dict[str, str] = field(default_factory=dict)


class TwilioSerializer(FrameProcessor):
    """Pipeline source: Twilio Media Streams messages in, pipecat frames out."""

    def __init__(
        self,
        *,
        settings: TransportSettings | None = None,
        clock: Clock = DEFAULT_CLOCK,
        output: TwilioOutput | None = None,
        on_protocol_error: Callable[[str], None] | None = None,
        max_message_bytes: int = 65536,
        max_messages_per_s: float = 200.0,
        burst: float = 100.0,
        error_limit: int = 50,
        error_window_s: float = 10.0,
        line_format: LineFormat = MULAW_8K,
        assigned: AssignedStream | None = None,
        **kwargs: Any,
    ) -> None:
        # Direct mode: a frame made from a Twilio message goes straight to the next stage from
        # the socket reader's task; no queue and task switch of its own per frame.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        settings = settings or TransportSettings()
        self.sample_rate = settings.sample_rate
        self.line_format = line_format
        self.assigned = assigned
        self.output = output
        self.guard = InboundGuard(
            clock,
            rate=max_messages_per_s,
            burst=burst,
            error_limit=error_limit,
            error_window_s=error_window_s,
            label=str(self),
        )
        self._on_protocol_error = on_protocol_error
        self._callback_failed = False
        self._max_message_bytes = max_message_bytes
        # "QQ": one caller frame in, one out — no 100 ms bursts on the caller's audio (latency);
        # telephone speech is band-limited to 4 kHz, so upsampling loses nothing audible.
        # Wideband at the pipeline rate passes through untouched.
        self._resampler = StreamResampler(line_format.rate, self.sample_rate, quality="QQ")
        self._max_media_bytes = line_format.bytes_per_s
        # Twilio's 20 ms media are gathered into ``caller_frame_ms`` frames: every stage after
        # this one runs once per frame, and that per-frame cost (queues, hops, the VAD's call)
        # is most of a call's CPU; the VAD and onset decide at most that much later.
        self._gather_bytes = max(
            line_format.frame_bytes, settings.caller_frame_ms * line_format.bytes_per_s // 1000
        )
        self._gathered = bytearray()
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.account_sid: str | None = None
        self.custom_parameters: dict[str, str] = {}
        self.tracks: list[str] = []
        self.frames_in = 0
        self.stream_origin: float | None = None
        """When (clock time) the stream's t = 0 was: the earliest that any media chunk's
        ``timestamp`` (ms since the stream started) and arrival allow. Events timed on this
        clock compare with the caller's stream time once this is subtracted."""
        self._line_clock = clock
        self._s_per_byte = 1.0 / line_format.bytes_per_s
        self.should_close: str | None = None
        self.started = asyncio.Event()
        self.ended = asyncio.Event()

    # -- inbound messages (called from the websocket reader) ---------------------------------

    async def receive_text(self, text: str) -> None:
        """Handle one websocket text message. Never raises for bad input."""
        if self.should_close is not None or self.ended.is_set():
            return
        try:
            message: Inbound | None = None
            problem: tuple[str, str] | None = None
            limit = self._max_message_bytes
            if len(text) > limit or (not text.isascii() and len(text.encode()) > limit):
                problem = ("too_large", f"message over {limit} bytes")
            else:
                try:
                    message = parse_inbound(
                        text, stream_sid=self.stream_sid, max_media_bytes=self._max_media_bytes
                    )
                except ProtocolError as e:
                    problem = (e.kind, e.reason)
            sent_at_s = None
            if type(message) is Media and message.timestamp_ms is not None:
                sent_at_s = message.timestamp_ms / 1000.0
            if not self.guard.admit(sent_at_s):
                await self._error("flood", "more messages than the per-second limit allows")
            elif problem is not None:
                await self._error(*problem)
            elif type(message) is Media:
                await self._on_media(message)
            elif message is not None:
                await self._on_event(message)
        except Exception:
            logger.opt(exception=True).error(f"{self}: failed handling an inbound message")

    async def receive_binary(self, data: bytes) -> None:
        """Twilio never sends binary frames: count and drop."""
        if self.should_close is not None or self.ended.is_set():
            return
        if not self.guard.admit():
            await self._error("flood", "more messages than the per-second limit allows")
            return
        await self._error("binary", f"binary frame of {len(data)} bytes")

    async def _on_media(self, media: Media) -> None:
        if media.track not in INBOUND_TRACKS:
            return
        payload = media.payload
        if len(payload) % self.line_format.sample_width:
            await self._error(
                "bad_payload_size", f"{self.line_format.name} payload of {len(payload)} bytes"
            )
            return
        self.frames_in += 1
        if media.timestamp_ms is not None:
            # A chunk can arrive only after its audio was captured: origin ≤ arrival − its end.
            origin = (
                self._line_clock.now()
                - media.timestamp_ms / 1000.0
                - len(payload) * self._s_per_byte
            )
            if self.stream_origin is None or origin < self.stream_origin:
                self.stream_origin = origin
        gathered = self._gathered
        gathered += payload
        if len(gathered) >= self._gather_bytes:
            await self._push_caller_audio()

    async def _push_caller_audio(self) -> None:
        """Decode, resample and push the caller audio gathered so far (``caller_frame_ms``)."""
        gathered = self._gathered
        if not gathered:
            return
        pcm = self._resampler.resample(self.line_format.to_pcm16(bytes(gathered)))
        del gathered[:]
        if pcm:
            frame = InputAudioRawFrame(pcm, self.sample_rate, 1)
            if not await pass_caller_audio(self, frame):
                await self.queue_frame(frame)

    async def _on_event(self, message: Connected | Start | Dtmf | Mark | Stop) -> None:
        # Whatever the caller said before this event goes first (keys, marks and the end keep
        # their place after the audio).
        await self._push_caller_audio()
        if isinstance(message, Mark):
            if self.output is not None:
                await self.output.on_mark_echo(message.name)
            await self.queue_frame(PlaybackMarkFrame(mark_name=message.name))
        elif isinstance(message, Dtmf):
            await self.queue_frame(InputDTMFFrame(KeypadEntry(message.digit)))
        elif isinstance(message, Start):
            await self._on_start(message)
        elif isinstance(message, Stop):
            logger.info(f"{self}: Twilio stopped stream {self.stream_sid} (call {self.call_sid})")
            await self.end_call("stop")
        else:
            logger.debug(f"{self}: Twilio connected ({message.protocol} {message.version})")

    async def _on_start(self, start: Start) -> None:
        reason, problem = (
            "bad_media_format",
            check_media_format(start.media_format, self.line_format),
        )
        assigned = self.assigned
        if problem is None and assigned is not None:
            if (start.stream_sid, start.call_sid) != (assigned.stream_sid, assigned.call_sid):
                reason = "bad_stream_identity"
                problem = (
                    f"start names stream {start.stream_sid!r:.40} / call {start.call_sid!r:.40}; "
                    f"this socket was assigned {assigned.stream_sid} / {assigned.call_sid}"
                )
            else:
                start.custom_parameters = {**start.custom_parameters, **assigned.parameters}
        if problem is not None:
            logger.error(f"{self}: call {start.call_sid!r:.40}: {problem}")
            self._count("bad_value")
            self.should_close = problem
            await self.end_call(reason)
            return
        self.stream_sid = start.stream_sid
        self.call_sid = start.call_sid
        self.account_sid = start.account_sid
        self.custom_parameters = start.custom_parameters
        self.tracks = start.tracks
        if self.output is not None:
            self.output.attach_stream(start.stream_sid)
        logger.info(f"{self}: call {start.call_sid} started on stream {start.stream_sid}")
        await self.queue_frame(
            CallStartedFrame(
                stream_sid=start.stream_sid,
                call_sid=start.call_sid,
                account_sid=start.account_sid,
                custom_parameters=dict(start.custom_parameters),
                tracks=list(start.tracks),
                agent_echo=self.output.echo if self.output is not None else None,
            )
        )
        self.started.set()

    async def end_call(self, reason: str) -> None:
        """The Twilio side is over: push ``CallEndedFrame`` and have the worker end the pipeline.

        An ``EndFrame`` pushed from inside a pipeline does not finish a ``PipelineWorker``,
        so this pushes ``EndWorkerFrame`` upstream and the worker sends the ``EndFrame``
        downstream through every processor (after the ``CallEndedFrame``).
        """
        if self.ended.is_set():
            return
        self.ended.set()
        if self.output is not None:
            self.output.transport_closed()
        await self.queue_frame(CallEndedFrame(reason=reason))
        await self.push_frame(
            EndWorkerFrame(reason=f"call ended: {reason}"), FrameDirection.UPSTREAM
        )

    def _count(self, kind: str) -> None:
        if self._on_protocol_error is not None:
            try:
                self._on_protocol_error(kind)
            except Exception:
                if not self._callback_failed:  # once per call: it is our caller's bug
                    self._callback_failed = True
                    logger.opt(exception=True).error(f"{self}: on_protocol_error callback failed")

    async def _error(self, kind: str, reason: str) -> None:
        too_many = self.guard.record(kind, reason)
        self._count(kind)
        if too_many and self.should_close is None:
            self.should_close = (
                f"too many protocol errors ({self.guard.recent_errors()} within "
                f"{self.guard.error_window_s:g} s, last {kind}: {reason})"
            )
            logger.warning(f"{self}: closing call {self.call_sid}: {self.should_close}")
            await self.end_call("protocol_errors")

    # -- pipeline side ------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Forward everything: the frames this source creates travel through here too."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
