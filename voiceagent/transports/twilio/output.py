"""TwilioOutput: the pipeline sink that plays agent audio into a Twilio Media Stream.

TTS audio (any rate) is resampled to 8 kHz, μ-law encoded and cut into exact 20 ms
(160-byte) frames. A sender task paces them at real time, keeping Twilio's playback
buffer at most ``lead_ms`` ahead (:class:`PlayoutPacer`). Each TTS segment (the audio
before a ``TTSTextFrame``) is followed by a ``mark``; echoes of those marks tell the
:class:`~voiceagent.transports.twilio.ledger.PlaybackLedger` what the caller heard.
On an ``InterruptionFrame`` a ``clear`` goes out before anything else and no audio
queued before it is ever sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    BotSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock, TimerHandle
from voiceagent.frames import AgentHeardFrame
from voiceagent.settings import TransportSettings
from voiceagent.transports.twilio.codec import ULAW_SILENCE, StreamResampler, pcm16_to_ulaw
from voiceagent.transports.twilio.ledger import FRAME_S, PlaybackLedger, PlayoutPacer
from voiceagent.transports.twilio.protocol import (
    TWILIO_FRAME_BYTES,
    ULAW_RATE,
    clear_message,
    mark_message,
    media_message,
)

STOP_SAFETY_S = 0.5
"""Without a mark echo, a turn counts as played this long after its estimated play-out end."""
BOT_SPEAKING_EVERY = 10  # frames (200 ms) between BotSpeakingFrames

_MEDIA, _MARK, _TURN_END = 0, 1, 2


@dataclass(slots=True, eq=False)
class _OutTurn:
    """One agent turn on its way out. Positions are μ-law bytes (= 8 kHz samples) into the turn."""

    turn_id: int
    expected: float = 0.0  # output position implied by the TTS audio received so far
    queued: int = 0  # bytes of whole frames queued
    boundaries: list[int] = field(default_factory=list)  # where each closed segment ends
    pending: deque[tuple[int, str, int]] = field(default_factory=deque)  # marks not yet queued
    tag_index: int = 0  # segment of the next frame
    reported_segment: int = -1
    sent_any: bool = False
    all_sent: bool = False
    finished: bool = False
    fallback: TimerHandle | None = None


class TwilioOutput(FrameProcessor):
    """Pipeline sink: paced μ-law media, per-segment marks, clear on barge-in, heard ledger."""

    def __init__(
        self,
        send_text: Callable[[str], Awaitable[None]],
        *,
        settings: TransportSettings | None = None,
        clock: Clock = DEFAULT_CLOCK,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        settings = settings or TransportSettings()
        self._send_text = send_text
        self._clock = clock
        self.ledger = PlaybackLedger(clock)
        self.pacer = PlayoutPacer(settings.lead_ms / 1000.0)
        self.stream_sid: str | None = None
        self.frames_out = 0
        self.marks_sent = 0
        self.clears_sent = 0
        self._closed = False
        self._stream_ready = asyncio.Event()
        self._queue: deque[tuple[int, int, _OutTurn, bytes | str | None, int]] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._generation = 0
        self._remainder = b""
        self._resamplers: dict[int, StreamResampler] = {}
        self._turn: _OutTurn | None = None  # the turn TTS audio is being added to
        self._turns: dict[int, _OutTurn] = {}  # turns not yet finished (building or playing)
        self._turn_counter = 0
        self._playing: set[int] = set()
        self._speaking = False
        self._since_speaking_frame = 0
        self._sender_task: asyncio.Task | None = None

    # -- wiring (called by the serializer / TwilioCall) -------------------------------------

    def attach_stream(self, stream_sid: str) -> None:
        """Twilio's ``start`` arrived: audio can be sent on ``stream_sid``."""
        self.stream_sid = stream_sid
        self._stream_ready.set()

    def transport_closed(self) -> None:
        """The socket is gone: drop queued audio and send nothing more."""
        self._closed = True
        self._queue.clear()
        self._wake.set()

    async def on_mark_echo(self, name: str) -> None:
        """Twilio echoed mark ``name``; finish its turn if that was the last of its audio."""
        turn_id = self.ledger.on_mark(name)
        if turn_id is None:
            logger.debug(f"{self}: mark {name!r} proves nothing (unknown or after clear)")
            return
        turn = self._turns.get(turn_id)
        if turn is not None and turn.all_sent and self.ledger.is_fully_played(turn_id):
            await self._finish_turn(turn, interrupted=False)

    # -- frames -------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Consume agent audio; handle TTS brackets, interruptions and the end of the call."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, OutputAudioRawFrame):
                self._on_audio(frame)
                return
            if isinstance(frame, TTSTextFrame):
                self._on_segment_text(frame.text)
            elif isinstance(frame, TTSStartedFrame):
                if self._turn is None or self._turn.expected:
                    self._end_turn_audio()
                    self._open_turn()
            elif isinstance(frame, TTSStoppedFrame):
                self._end_turn_audio()
            elif isinstance(frame, InterruptionFrame):
                await self._interrupt()
            elif isinstance(frame, StartFrame):
                self._sender_task = self.create_task(self._sender(), "twilio_sender")
            elif isinstance(frame, EndFrame):
                await self._drain_and_stop()
            elif isinstance(frame, CancelFrame):
                await self._stop(interrupted=True, push=False)
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Stop the sender task and timers."""
        await super().cleanup()
        await self._stop_sender()
        for turn in self._turns.values():
            if turn.fallback is not None:
                turn.fallback.cancel()

    # -- building the outbound queue (process task) ------------------------------------------

    def _open_turn(self) -> _OutTurn:
        self._turn_counter += 1
        turn = _OutTurn(self._turn_counter)
        self._turn = turn
        self._turns[turn.turn_id] = turn
        self.ledger.start_turn(turn.turn_id)
        return turn

    def _on_audio(self, frame: OutputAudioRawFrame) -> None:
        if self._closed or not frame.audio:
            return
        turn = self._turn or self._open_turn()
        pcm = frame.audio
        if len(pcm) & 1:
            pcm = pcm[:-1]
        if frame.num_channels > 1:
            samples = np.frombuffer(pcm, dtype=np.int16)
            pcm = samples[: len(samples) // frame.num_channels * frame.num_channels][
                :: frame.num_channels
            ].tobytes()
        turn.expected += len(pcm) / 2 * ULAW_RATE / frame.sample_rate
        resampler = self._resamplers.get(frame.sample_rate)
        if resampler is None:
            resampler = StreamResampler(frame.sample_rate, ULAW_RATE)
            self._resamplers[frame.sample_rate] = resampler
        pcm8 = resampler.resample(pcm)
        if pcm8:
            self._enqueue_ulaw(turn, pcm16_to_ulaw(pcm8))

    def _enqueue_ulaw(self, turn: _OutTurn, ulaw: bytes) -> None:
        buf = self._remainder + ulaw if self._remainder else ulaw
        whole = len(buf) - len(buf) % TWILIO_FRAME_BYTES
        gen, append, boundaries = self._generation, self._queue.append, turn.boundaries
        for start in range(0, whole, TWILIO_FRAME_BYTES):
            while turn.tag_index < len(boundaries) and boundaries[turn.tag_index] <= turn.queued:
                turn.tag_index += 1
            append((_MEDIA, gen, turn, buf[start : start + TWILIO_FRAME_BYTES], turn.tag_index))
            turn.queued += TWILIO_FRAME_BYTES
            if turn.pending and turn.pending[0][0] <= turn.queued:
                self._queue_due_marks(turn)
        self._remainder = buf[whole:]
        if whole:
            self._wake.set()

    def _queue_due_marks(self, turn: _OutTurn, *, force: bool = False) -> None:
        """Queue each pending mark once the frame holding its segment's last byte is queued.

        The resampler holds back a few ms of audio, so a segment's text can arrive before
        all of its audio came out; the mark waits for it (at most 20 ms late, never early).
        """
        pending = turn.pending
        while pending and (force or pending[0][0] <= turn.queued):
            _, mark, index = pending.popleft()
            self._queue.append((_MARK, self._generation, turn, mark, index))
        self._wake.set()

    def _close_segment(self, turn: _OutTurn, text: str, end: int | None = None) -> None:
        boundary = round(turn.expected) if end is None else end
        start = turn.boundaries[-1] if turn.boundaries else 0
        if boundary <= start:
            self.ledger.add_text(turn.turn_id, text)
            return
        index = len(turn.boundaries)
        mark = f"a{turn.turn_id}.{index + 1}"
        self.ledger.add_segment(turn.turn_id, mark, text, (boundary - start) / ULAW_RATE)
        turn.boundaries.append(boundary)
        turn.pending.append((boundary, mark, index))
        self._queue_due_marks(turn)

    def _on_segment_text(self, text: str) -> None:
        if self._turn is not None and text:
            self._close_segment(self._turn, text)

    def _end_turn_audio(self) -> None:
        """TTS finished this turn: flush filters and the partial frame, then the final mark."""
        turn, self._turn = self._turn, None
        if turn is None:
            return
        if not self._closed:
            for resampler in self._resamplers.values():
                tail = resampler.flush()
                if tail:
                    self._enqueue_ulaw(turn, pcm16_to_ulaw(tail))
            if self._remainder:
                pad = bytes([ULAW_SILENCE]) * (TWILIO_FRAME_BYTES - len(self._remainder))
                self._enqueue_ulaw(turn, pad)
        self._queue_due_marks(turn, force=True)
        # Frames after the last mark (audio without text, or no text at all) get their own.
        last = turn.boundaries[-1] if turn.boundaries else 0
        marked = -(-last // TWILIO_FRAME_BYTES) * TWILIO_FRAME_BYTES
        if turn.queued > marked:
            self._close_segment(turn, "", end=turn.queued)
        self.ledger.complete_turn(turn.turn_id)
        if turn.queued == 0:
            self._turns.pop(turn.turn_id, None)
            self.ledger.close_turn(turn.turn_id, interrupted=False)
            return
        self._queue.append((_TURN_END, self._generation, turn, None, 0))
        self._wake.set()

    # -- the sender task -----------------------------------------------------------------------

    async def _sleep(self, delay: float) -> None:
        future = asyncio.get_running_loop().create_future()
        handle = self._clock.call_later(delay, lambda: future.done() or future.set_result(None))
        try:
            await future
        finally:
            handle.cancel()

    async def _sender(self) -> None:
        queue, pacer, clock = self._queue, self.pacer, self._clock
        while True:
            if not queue or self._closed or self.stream_sid is None:
                if self._closed:
                    queue.clear()
                if not queue:
                    self._drained.set()
                self._wake.clear()
                if self.stream_sid is None:
                    await self._stream_ready.wait()
                else:
                    await self._wake.wait()
                continue
            kind, gen, turn, payload, index = queue[0]
            if kind == _MEDIA:
                delay = pacer.send_delay(clock.now())
                if delay > 0.0:
                    await self._sleep(delay)
                    continue
            queue.popleft()
            if kind == _TURN_END:
                await self._on_turn_sent(turn)
                continue
            async with self._send_lock:
                if gen != self._generation or self._closed:
                    continue
                now = clock.now()
                if kind == _MEDIA:
                    if not await self._send(media_message(self.stream_sid, payload)):
                        continue
                    pacer.on_sent(now)
                    self.frames_out += 1
                else:
                    if not await self._send(mark_message(self.stream_sid, payload)):
                        continue
                    self.marks_sent += 1
            if kind == _MEDIA:
                await self._on_media_sent(turn, index, now)

    async def _on_media_sent(self, turn: _OutTurn, index: int, now: float) -> None:
        if turn.finished:
            return
        if turn.reported_segment != index:
            turn.reported_segment = index
            self.ledger.on_audio_sent(turn.turn_id, index, now)
        if not turn.sent_any:
            turn.sent_any = True
            self._playing.add(turn.turn_id)
        if not self._speaking:
            self._speaking = True
            self._since_speaking_frame = 0
            await self.broadcast_frame(BotStartedSpeakingFrame)
        else:
            self._since_speaking_frame += 1
            if self._since_speaking_frame >= BOT_SPEAKING_EVERY:
                self._since_speaking_frame = 0
                await self.broadcast_frame(BotSpeakingFrame)

    async def _on_turn_sent(self, turn: _OutTurn) -> None:
        turn.all_sent = True
        if turn.finished:
            return
        if self.ledger.is_fully_played(turn.turn_id):
            await self._finish_turn(turn, interrupted=False)
            return
        delay = self.pacer.buffered(self._clock.now()) + STOP_SAFETY_S
        turn.fallback = self._clock.call_later(delay, lambda: self._on_fallback(turn))

    def _on_fallback(self, turn: _OutTurn) -> None:
        turn.fallback = None
        if not turn.finished:
            logger.debug(f"{self}: no echo for turn {turn.turn_id}; assuming it played out")
            self.create_task(self._finish_turn(turn, interrupted=False), "twilio_turn_played")

    async def _send(self, text: str) -> bool:
        try:
            await self._send_text(text)
            return True
        except Exception as e:
            if not self._closed:
                logger.warning(f"{self}: sending to Twilio failed, dropping output audio: {e!r}")
            self.transport_closed()
            return False

    # -- turn ends, interruptions, the end of the call -----------------------------------------

    async def _finish_turn(self, turn: _OutTurn, *, interrupted: bool) -> None:
        if turn.finished:
            return
        turn.finished = True
        if turn.fallback is not None:
            turn.fallback.cancel()
            turn.fallback = None
        self._turns.pop(turn.turn_id, None)
        self._playing.discard(turn.turn_id)
        report = self.ledger.close_turn(turn.turn_id, interrupted=interrupted)
        if report.full_text or turn.sent_any:
            await self.push_frame(
                AgentHeardFrame(
                    turn_id=report.turn_id,
                    text=report.text,
                    full_text=report.full_text,
                    interrupted=report.interrupted,
                    unheard_text=report.unheard_text,
                ),
                FrameDirection.UPSTREAM,
            )
        if self._speaking and not self._playing:
            self._speaking = False
            await self.broadcast_frame(BotStoppedSpeakingFrame)

    async def _interrupt(self) -> None:
        async with self._send_lock:
            self._generation += 1
            self._queue.clear()
            self._remainder = b""
            for resampler in self._resamplers.values():
                resampler.reset()
            now = self._clock.now()
            unplayed = bool(self._playing) or self.pacer.buffered(now) > 0.0
            if unplayed and self.stream_sid is not None and not self._closed:
                if await self._send(clear_message(self.stream_sid)):
                    self.clears_sent += 1
                self.ledger.on_clear(now)
            self.pacer.on_clear(now)
        self._turn = None
        for turn in list(self._turns.values()):
            await self._finish_turn(turn, interrupted=True)

    async def _drain_and_stop(self) -> None:
        """EndFrame: play out what is queued (unless the socket is gone), then stop."""
        if self._turn is not None:
            self._end_turn_audio()
        if self._queue and self._sender_task and self.stream_sid and not self._closed:
            self._drained.clear()
            self._wake.set()
            budget = sum(1 for item in self._queue if item[0] == _MEDIA) * FRAME_S + 2.0
            try:
                await asyncio.wait_for(self._drained.wait(), timeout=budget)
            except TimeoutError:
                logger.warning(f"{self}: output did not drain in {budget:.1f} s; ending anyway")
        if not self._closed:
            remaining = self.pacer.buffered(self._clock.now())
            if remaining > 0.0 and self._turns:
                await self._sleep(remaining)
        await self._stop(interrupted=self._closed, push=True)

    async def _stop(self, *, interrupted: bool, push: bool) -> None:
        await self._stop_sender()
        self._queue.clear()
        self._turn = None
        for turn in list(self._turns.values()):
            if push:
                await self._finish_turn(turn, interrupted=interrupted or not turn.all_sent)
            else:
                turn.finished = True
                if turn.fallback is not None:
                    turn.fallback.cancel()
                self.ledger.close_turn(turn.turn_id, interrupted=True)
        self._turns.clear()
        self._playing.clear()

    async def _stop_sender(self) -> None:
        if self._sender_task is not None:
            task, self._sender_task = self._sender_task, None
            await self.cancel_task(task)
