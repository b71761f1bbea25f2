"""``TwilioFrameSerializer``: Twilio Media Streams for pipecat's own WebSocket transports.

The same protocol core as voiceagent's server (strict parsing in
:mod:`~voiceagent.transports.twilio.protocol`, the line formats and μ-law codec, the inbound
flood guard, the playback ledger), as a pipecat ``FrameSerializer`` — usable with
``FastAPIWebsocketTransport`` or ``SingleClientWebsocketServerTransport`` like pipecat's
``TwilioFrameSerializer`` (``pipecat.serializers.twilio``), plus what that one lacks:

- **marks and the heard ledger**: with :class:`~voiceagent.transports.twilio.marks.TwilioMarks`
  right before the transport's output, the serializer knows each agent turn's segments (text
  and audio length) as the TTS makes them, and follows each segment's audio with a ``mark``;
  Twilio's echoes (and, at a ``clear``, how much of the turn's audio had played) become an
  ``AgentHeardFrame`` per agent turn, pushed *downstream* from the transport's input
  (``TurnProcessor`` takes it from either side);
- **pacing**: audio is never sent more than ``lead_ms`` ahead of real time (pipecat's WebSocket
  outputs send at real time, a chunk ahead, so this only holds back a transport that writes
  faster), and the same play-out model tells how much of a turn had played at a ``clear``;
- ``start`` → ``CallStartedFrame`` (the turn engine greets on it), ``stop`` →
  ``CallEndedFrame``, marks → ``PlaybackMarkFrame``; bad input dropped, counted, logged at most
  once per kind every few seconds.

Give the transport the line's rate out (``audio_out_sample_rate=8000``): pipecat's output then
resamples ahead of its send buffer and each chunk goes out as it is. Audio at another rate is
resampled here, and the stream resampler releases it in bursts of about 100 ms, which a
real-time output plays with gaps (said once per call in the log).

It does not hang the call up on ``EndFrame`` (pipecat's does, over REST): voiceagent's
``CallHangUp`` or ``voiceagent.TwilioRestClient`` do that on purpose.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.serializers.base_serializer import FrameSerializer

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.frames import AgentHeardFrame, CallEndedFrame, CallStartedFrame, PlaybackMarkFrame
from voiceagent.settings import TransportSettings
from voiceagent.transports.twilio.codec import StreamResampler
from voiceagent.transports.twilio.line_format import MULAW_8K, LineFormat
from voiceagent.transports.twilio.marks import SegmentMarkFrame, SegmentPlanFrame, SyncMarkFrame
from voiceagent.transports.twilio.playback import StreamPlayback
from voiceagent.transports.twilio.protocol import (
    Dtmf,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    check_media_format,
    clear_message,
    mark_message,
    media_message,
    parse_inbound,
)
from voiceagent.transports.twilio.serializer import INBOUND_TRACKS, InboundGuard


class TwilioFrameSerializer(FrameSerializer):
    """Twilio Media Streams ⇄ pipecat frames, with marks, the heard ledger and pacing."""

    def __init__(
        self,
        *,
        stream_sid: str | None = None,
        call_sid: str | None = None,
        settings: TransportSettings | None = None,
        clock: Clock = DEFAULT_CLOCK,
        line_format: LineFormat = MULAW_8K,
        on_protocol_error: Callable[[str], None] | None = None,
        max_message_bytes: int = 65536,
        params: FrameSerializer.InputParams | None = None,
    ) -> None:
        """Create the serializer for one call.

        Args:
            stream_sid: The stream's SID when the application already read Twilio's ``start``
                (pipecat's ``parse_telephony_websocket``); else it is taken from ``start``.
            call_sid: The call's SID, likewise.
            settings: The pipeline's input rate (when the pipeline does not give one) and the
                output lead.
            clock: Time source of pacing, flood control and the heard ledger.
            line_format: The stream's audio (Twilio: 8 kHz μ-law).
            on_protocol_error: Counts one dropped inbound message of the given kind.
            max_message_bytes: Larger inbound messages are dropped.
            params: pipecat's serializer parameters.
        """
        super().__init__(params)
        settings = settings or TransportSettings()
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.line_format = line_format
        self.guard = InboundGuard(clock, label="twilio")
        self.playback = StreamPlayback(clock, lead_s=settings.lead_ms / 1000.0)
        self.should_close: str | None = None
        """Why the call should be closed (a flood of bad messages, a wrong media format)."""
        self.frames_in = 0
        self.frames_out = 0
        self.marks_sent = 0
        self.clears_sent = 0
        self._clock = clock
        self._sample_rate = settings.sample_rate
        self._on_protocol_error = on_protocol_error
        self._max_message_bytes = max_message_bytes
        self._in_resampler: StreamResampler | None = None
        self._out_resamplers: dict[int, StreamResampler] = {}
        self._generation = 0  # bumped by each clear: audio paced across it is not sent
        self._ended = False

    async def setup(self, setup: FrameProcessorSetup) -> None:
        """Take the pipeline's input rate (caller audio is resampled to it)."""
        await super().setup(setup)
        if setup.audio_in_sample_rate:
            self._sample_rate = setup.audio_in_sample_rate

    def call_started_frame(self, custom_parameters: dict[str, str] | None = None) -> Frame:
        """``CallStartedFrame`` for a stream whose ``start`` the application read itself."""
        return CallStartedFrame(
            stream_sid=self.stream_sid or "",
            call_sid=self.call_sid or "",
            custom_parameters=dict(custom_parameters or {}),
        )

    # -- Twilio → pipeline ----------------------------------------------------------------------

    async def deserialize(self, data: str | bytes) -> Frame | None:
        """One Twilio message → a frame (or None). Never raises for bad input."""
        if self._ended:
            return None
        if isinstance(data, bytes):
            if not self.guard.admit():
                return self._error("flood", "more messages than the per-second limit allows")
            return self._error("binary", f"binary frame of {len(data)} bytes")
        limit = self._max_message_bytes
        if len(data) > limit or (not data.isascii() and len(data.encode()) > limit):
            return self._error("too_large", f"message over {limit} bytes")
        try:
            message = parse_inbound(
                data, stream_sid=self.stream_sid, max_media_bytes=self.line_format.bytes_per_s
            )
        except ProtocolError as e:
            if not self.guard.admit():
                return self._error("flood", "more messages than the per-second limit allows")
            return self._error(e.kind, e.reason)
        sent_at_s = None
        if type(message) is Media and message.timestamp_ms is not None:
            sent_at_s = message.timestamp_ms / 1000.0
        if not self.guard.admit(sent_at_s):
            return self._error("flood", "more messages than the per-second limit allows")
        if type(message) is Media:
            return self._caller_audio(message)
        if isinstance(message, Mark):
            return self._mark_echo(message.name)
        if isinstance(message, Dtmf):
            return InputDTMFFrame(KeypadEntry(message.digit))
        if isinstance(message, Start):
            return self._start(message)
        if isinstance(message, Stop):
            logger.info(f"{self}: Twilio stopped stream {self.stream_sid} (call {self.call_sid})")
            self._ended = True
            return CallEndedFrame(reason="stop")
        return None  # connected

    def _caller_audio(self, media: Media) -> Frame | None:
        if media.track not in INBOUND_TRACKS:
            return None
        try:
            pcm = self.line_format.to_pcm16(media.payload)
        except ValueError as e:
            return self._error("bad_payload_size", str(e))
        if self._in_resampler is None:
            # "QQ": one 20 ms frame in, one out (no bursts on the caller's audio); the phone
            # line is band-limited to 4 kHz, so upsampling loses nothing audible.
            self._in_resampler = StreamResampler(
                self.line_format.rate, self._sample_rate, quality="QQ"
            )
        pcm = self._in_resampler.resample(pcm)
        self.frames_in += 1
        return InputAudioRawFrame(pcm, self._sample_rate, 1) if pcm else None

    def _mark_echo(self, name: str) -> Frame:
        self.playback.on_mark(name)
        report = self.playback.reports.popleft() if self.playback.reports else None
        if report is None:
            return PlaybackMarkFrame(mark_name=name)
        return AgentHeardFrame(
            turn_id=report.turn_id,
            text=report.text,
            full_text=report.full_text,
            interrupted=report.interrupted,
            unheard_text=report.unheard_text,
            in_context=report.in_context,
        )

    def _start(self, start: Start) -> Frame | None:
        problem = check_media_format(start.media_format, self.line_format)
        if problem is None and self.stream_sid is not None and start.stream_sid != self.stream_sid:
            problem = f"start names stream {start.stream_sid!r:.40}, expected {self.stream_sid}"
        if problem is not None:
            logger.error(f"{self}: call {start.call_sid!r:.40}: {problem}")
            self._count("bad_value")
            self.should_close = problem
            self._ended = True
            return CallEndedFrame(reason="bad_media_format")
        self.stream_sid = start.stream_sid
        self.call_sid = start.call_sid
        logger.info(f"{self}: call {start.call_sid} started on stream {start.stream_sid}")
        return CallStartedFrame(
            stream_sid=start.stream_sid,
            call_sid=start.call_sid,
            account_sid=start.account_sid,
            custom_parameters=dict(start.custom_parameters),
            tracks=list(start.tracks),
        )

    def _count(self, kind: str) -> None:
        if self._on_protocol_error is not None:
            try:
                self._on_protocol_error(kind)
            except Exception:
                logger.opt(exception=True).error(f"{self}: on_protocol_error callback failed")
                self._on_protocol_error = None  # once per call: it is our caller's bug

    def _error(self, kind: str, reason: str) -> Frame | None:
        too_many = self.guard.record(kind, reason)
        self._count(kind)
        if too_many and self.should_close is None:
            self.should_close = (
                f"too many protocol errors ({self.guard.recent_errors()} within "
                f"{self.guard.error_window_s:g} s, last {kind}: {reason})"
            )
            logger.warning(f"{self}: ending call {self.call_sid}: {self.should_close}")
            self._ended = True
            return CallEndedFrame(reason="protocol_errors")
        return None

    # -- pipeline → Twilio ----------------------------------------------------------------------

    async def serialize(self, frame: Frame) -> str | bytes | None:
        """A frame the transport is sending → one Twilio message (or None)."""
        sid = self.stream_sid
        if isinstance(frame, OutputAudioRawFrame):
            return None if sid is None or self._ended else await self._media(sid, frame)
        if isinstance(frame, SegmentPlanFrame):
            self._plan(frame)
            return None
        if isinstance(frame, SegmentMarkFrame):
            if frame.edge == "mark":
                return self._mark(sid, frame.mark)
            if frame.edge == "flush":
                return None if sid is None or self._ended else await self._flush(sid)
            self.playback.sending(frame.turn_id)
            return None
        if isinstance(frame, SyncMarkFrame):
            return self._mark(sid, self.playback.sync_mark())
        if isinstance(frame, InterruptionFrame):
            self._generation += 1
            for resampler in self._out_resamplers.values():
                resampler.reset()
            if self.playback.clear(self._clock.now()) and sid is not None and not self._ended:
                self.clears_sent += 1
                return clear_message(sid)
            return None
        if isinstance(frame, OutputTransportMessageFrame | OutputTransportMessageUrgentFrame):
            return None if self.should_ignore_frame(frame) else json.dumps(frame.message)
        return None

    async def _media(self, sid: str, frame: OutputAudioRawFrame) -> str | None:
        pcm = frame.audio
        if frame.num_channels != 1 or not pcm:
            return None
        resampler = self._out_resamplers.get(frame.sample_rate)
        if resampler is None:
            resampler = StreamResampler(frame.sample_rate, self.line_format.rate)
            self._out_resamplers[frame.sample_rate] = resampler
            if frame.sample_rate != self.line_format.rate:
                logger.warning(
                    f"{self}: agent audio at {frame.sample_rate} Hz is resampled here, in "
                    f"bursts; give the transport audio_out_sample_rate={self.line_format.rate}"
                )
        # The resampler may hold audio back and release it in bursts: what goes out is what it
        # gives, and the rest follows with the next chunk or the segment's flush.
        return await self._send_line(sid, resampler.resample(pcm[: len(pcm) & ~1]))

    async def _flush(self, sid: str) -> str | None:
        """A segment ends: what the resamplers still hold is that segment's audio."""
        tail = b"".join(resampler.flush() for resampler in self._out_resamplers.values())
        return await self._send_line(sid, tail)

    async def _send_line(self, sid: str, line_pcm: bytes) -> str | None:
        """Pace ``line_pcm`` (PCM16 at the line rate) to real time; the media message."""
        if not line_pcm:
            return None
        seconds = len(line_pcm) / 2 / self.line_format.rate
        generation = self._generation
        delay = self.playback.send_delay(self._clock.now(), seconds)
        if delay > 0.0:
            await self._sleep(delay)
            if generation != self._generation or self._ended:
                return None  # a clear came meanwhile: this audio belongs to the cut turn
        self.playback.audio_sent(seconds, self._clock.now())
        self.frames_out += 1
        return media_message(sid, self.line_format.from_pcm16(line_pcm))

    def _plan(self, plan: SegmentPlanFrame) -> None:
        playback = self.playback
        if plan.edge == "segment":
            playback.plan_segment(
                plan.turn_id, plan.mark, plan.text, plan.seconds, in_context=plan.in_context
            )
        elif plan.edge == "turn_start":
            playback.plan_turn(plan.turn_id)
        else:
            playback.plan_end(plan.turn_id)

    def _mark(self, sid: str | None, name: str | None) -> str | None:
        if name is None or sid is None or self._ended:
            return None
        self.marks_sent += 1
        return mark_message(sid, name)

    async def _sleep(self, delay: float) -> None:
        future = asyncio.get_running_loop().create_future()
        handle = self._clock.call_later(delay, lambda: future.done() or future.set_result(None))
        try:
            await future
        finally:
            handle.cancel()
