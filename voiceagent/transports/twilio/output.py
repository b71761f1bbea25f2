"""TwilioOutput: the pipeline sink that plays agent audio into a Twilio Media Stream.

TTS audio (any rate) is resampled to the stream's line format (Twilio: 8 kHz μ-law; a wideband
leg: 16 kHz PCM16) and cut into exact 20 ms frames
(:class:`~voiceagent.transports.twilio.outbound.OutboundQueue`). A sender
task paces them at real time, keeping Twilio's playback buffer at most ``lead_ms`` ahead
(:class:`PlayoutPacer`), woken by the tick all calls share
(:mod:`~voiceagent.transports.twilio.pacing`). Each TTS segment (the audio before a
``TTSTextFrame``) is followed by a ``mark``; echoes of those marks tell the
:class:`~voiceagent.transports.twilio.ledger.PlaybackLedger` what the caller heard.
On an ``InterruptionFrame`` a ``clear`` goes out before anything else and no audio
queued before it is ever sent. ``PlaybackPauseFrame`` (the caller's first sound) is a *soft
clear*: ``clear`` goes out at once, and what Twilio had not played (≤ ``lead_ms``, whole frames)
goes back to the head of the queue with the marks after it (``OutboundQueue.take_back``);
``PlaybackResumeFrame`` plays on from where the caller stopped hearing, an interruption drops
it. The turn's heard share counts only audio actually played. A ``PlaybackFenceFrame`` is
answered upstream with ``PlaybackFenceReachedFrame`` once every turn received before it has
finished playing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

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

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.frames import (
    AgentHeardFrame,
    PlaybackFenceFrame,
    PlaybackFenceReachedFrame,
    PlaybackPauseFrame,
    PlaybackResumeFrame,
)
from voiceagent.settings import TransportSettings
from voiceagent.transports.twilio.echo import AgentEcho
from voiceagent.transports.twilio.ledger import FRAME_S, PlaybackLedger, PlayoutPacer, PlayoutTap
from voiceagent.transports.twilio.line_format import MULAW_8K, LineFormat
from voiceagent.transports.twilio.outbound import MEDIA, TURN_END, OutboundQueue, OutTurn
from voiceagent.transports.twilio.pacing import shared_tick
from voiceagent.transports.twilio.protocol import clear_message, mark_message, media_message

STOP_SAFETY_S = 0.5
"""Without a mark echo, a turn counts as played this long after its estimated play-out end."""
BOT_SPEAKING_EVERY = 50
"""Frames (1 s) between ``BotSpeakingFrame`` s: a heartbeat for pipecat's idle timeouts. Each
one travels every stage both ways; nothing here needs it more often."""


class TwilioOutput(FrameProcessor):
    """Pipeline sink: paced media, per-segment marks, clear on barge-in, heard ledger."""

    def __init__(
        self,
        send_text: Callable[[str], Awaitable[None]],
        *,
        settings: TransportSettings | None = None,
        clock: Clock = DEFAULT_CLOCK,
        line_format: LineFormat = MULAW_8K,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        settings = settings or TransportSettings()
        self.line_format = line_format
        self._send_text = send_text
        self._clock = clock
        self.pacer = PlayoutPacer(settings.lead_ms / 1000.0)
        self.ledger = PlaybackLedger(clock, buffered=self.pacer.buffered)
        self.stream_sid: str | None = None
        self.frames_out = 0
        self.marks_sent = 0
        self.clears_sent = 0
        """Every ``clear`` sent (barge-ins and soft clears)."""
        self.pause_clears = 0
        """Soft clears: the agent stopped at a pause, its unplayed audio held to go on."""
        self.pauses = 0
        self._paused = False
        self._closed = False
        self._stream_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._out = OutboundQueue(self.ledger, self._wake, line_format, lead_s=self.pacer.lead_s)
        self._drained = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._playing: set[int] = set()
        self._speaking = False
        self._since_speaking_frame = 0
        self._sender_task: asyncio.Task | None = None
        self._fences: list[int] = []
        self.echo = AgentEcho(clock=clock, line_format=line_format)
        self.playout_taps: list[PlayoutTap] = [self.echo]
        """Told each media frame as sent (with when it plays) and each clear (the call's echo
        record; the recorder adds itself)."""

    # -- wiring (called by the serializer / TwilioCall) -------------------------------------

    def attach_stream(self, stream_sid: str) -> None:
        """Twilio's ``start`` arrived: audio can be sent on ``stream_sid``."""
        self.stream_sid = stream_sid
        self._stream_ready.set()

    def transport_closed(self) -> None:
        """The socket is gone: drop queued audio and send nothing more."""
        self._closed = True
        self._out.items.clear()
        self._wake.set()

    async def on_mark_echo(self, name: str) -> None:
        """Twilio echoed mark ``name``; finish its turn if that was the last of its audio."""
        turn_id = self.ledger.on_mark(name)
        if turn_id is None:
            logger.debug(f"{self}: mark {name!r} proves nothing (unknown or after clear)")
            return
        turn = self._out.turns.get(turn_id)
        if turn is not None and turn.all_sent and self.ledger.is_fully_played(turn_id):
            await self._finish_turn(turn, interrupted=False)

    # -- frames -------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Consume agent audio; handle TTS brackets, interruptions and the end of the call."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, OutputAudioRawFrame):
                if not self._closed:
                    self._out.add_audio(frame)
                return
            if isinstance(frame, TTSTextFrame):
                self._out.add_segment_text(frame.text, in_context=frame.append_to_context)
            elif isinstance(frame, TTSStartedFrame):
                self._out.start_turn(flush=not self._closed)
            elif isinstance(frame, TTSStoppedFrame):
                self._out.end_turn(flush=not self._closed)
            elif isinstance(frame, InterruptionFrame):
                self._paused = False
                await self._interrupt()
            elif isinstance(frame, PlaybackPauseFrame):
                if not self._paused:
                    self._paused = True
                    self.pauses += 1
                    await self._pause_clear()
                return
            elif isinstance(frame, PlaybackResumeFrame):
                self._paused = False
                self._wake.set()
                return
            elif isinstance(frame, PlaybackFenceFrame):
                self._fences.append(frame.fence_id)
                await self._release_fences()
                return
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
        for turn in self._out.turns.values():
            if turn.fallback is not None:
                turn.fallback.cancel()

    # -- the sender task -----------------------------------------------------------------------

    async def _sleep(self, delay: float) -> None:
        future = asyncio.get_running_loop().create_future()
        handle = self._clock.call_later(delay, lambda: future.done() or future.set_result(None))
        try:
            await future
        finally:
            handle.cancel()

    async def _sender(self) -> None:
        out, pacer, clock = self._out, self.pacer, self._clock
        tick = shared_tick(clock)
        queue = out.items
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
            item = queue[0]
            kind, gen, turn, payload, index = item
            if kind == MEDIA and self._paused:
                self._wake.clear()
                await self._wake.wait()
                continue
            if kind == MEDIA:
                now = clock.now()
                delay = pacer.send_delay(now)
                if delay > 0.0 and not tick.due(delay):
                    await tick.until(now + delay)
                    continue
            if kind == TURN_END:
                queue.popleft()
                await self._on_turn_sent(turn)
                continue
            async with self._send_lock:
                # A clear or a pause may have come while this waited for the lock.
                if not queue or queue[0] is not item or (kind == MEDIA and self._paused):
                    continue
                queue.popleft()
                if gen != out.generation or self._closed:
                    continue
                now = clock.now()
                if kind == MEDIA:
                    if not await self._send(media_message(self.stream_sid, payload)):
                        continue
                    pacer.on_sent(now)
                    out.note_sent(item)
                    self.frames_out += 1
                    for tap in self.playout_taps:
                        tap.agent_audio(turn.turn_id, payload, pacer.play_end - FRAME_S)
                else:
                    if not await self._send(mark_message(self.stream_sid, payload)):
                        continue
                    out.note_sent(item)
                    self.marks_sent += 1
                    for tap in self.playout_taps:
                        tap.agent_mark(payload, now)
            if kind == MEDIA:
                await self._on_media_sent(turn)

    async def _on_media_sent(self, turn: OutTurn) -> None:
        if turn.finished:
            return
        self.ledger.on_sent(turn.turn_id)
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

    async def _on_turn_sent(self, turn: OutTurn) -> None:
        turn.all_sent = True
        if turn.finished:
            return
        if self.ledger.is_fully_played(turn.turn_id):
            await self._finish_turn(turn, interrupted=False)
            return
        delay = self.pacer.buffered(self._clock.now()) + STOP_SAFETY_S
        turn.fallback = self._clock.call_later(delay, lambda: self._on_fallback(turn))

    def _on_fallback(self, turn: OutTurn) -> None:
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

    async def _finish_turn(self, turn: OutTurn, *, interrupted: bool) -> None:
        if turn.finished:
            return
        turn.finished = True
        if turn.fallback is not None:
            turn.fallback.cancel()
            turn.fallback = None
        self._out.turns.pop(turn.turn_id, None)
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
                    in_context=report.in_context,
                ),
                FrameDirection.UPSTREAM,
            )
        if self._speaking and not self._playing:
            self._speaking = False
            await self.broadcast_frame(BotStoppedSpeakingFrame)
        await self._release_fences()

    async def _release_fences(self) -> None:
        """Report the fences with nothing left to play before them."""
        if self._fences and (self._closed or not self._out.turns):
            fences, self._fences = self._fences, []
            for fence_id in fences:
                await self.push_frame(
                    PlaybackFenceReachedFrame(fence_id=fence_id), FrameDirection.UPSTREAM
                )

    async def _pause_clear(self) -> None:
        """Stop the agent at the caller now; hold what Twilio had not played, to go on later."""
        async with self._send_lock:
            now = self._clock.now()
            buffered = self.pacer.buffered(now)
            if buffered <= 0.0 or self.stream_sid is None or self._closed:
                return  # nothing is playing at the caller: the pause alone holds the rest
            if not await self._send(clear_message(self.stream_sid)):
                return
            self.clears_sent += 1
            self.pause_clears += 1
            # Whole frames: the one playing goes again from its start (≤ 20 ms heard twice).
            frames = math.ceil(buffered / FRAME_S - 1e-6)
            held = self._out.take_back(frames, str(self.pause_clears))
            self.pacer.on_clear(now)
            for tap in self.playout_taps:
                tap.agent_paused(now, held * FRAME_S)

    async def _interrupt(self) -> None:
        async with self._send_lock:
            self._out.reset()
            now = self._clock.now()
            unplayed = bool(self._playing) or self.pacer.buffered(now) > 0.0
            if unplayed and self.stream_sid is not None and not self._closed:
                if await self._send(clear_message(self.stream_sid)):
                    self.clears_sent += 1
                self.ledger.on_clear(now)
                for tap in self.playout_taps:
                    tap.agent_cleared(now)
            self.pacer.on_clear(now)
        self._out.current = None
        for turn in list(self._out.turns.values()):
            await self._finish_turn(turn, interrupted=True)

    async def _drain_and_stop(self) -> None:
        """EndFrame: play out what is queued (unless the socket is gone), then stop."""
        self._paused = False
        out = self._out
        if out.current is not None:
            out.end_turn(flush=not self._closed)
        if out.items and self._sender_task and self.stream_sid and not self._closed:
            self._drained.clear()
            self._wake.set()
            budget = out.media_count() * FRAME_S + 2.0
            try:
                await asyncio.wait_for(self._drained.wait(), timeout=budget)
            except TimeoutError:
                logger.warning(f"{self}: output did not drain in {budget:.1f} s; ending anyway")
        if not self._closed:
            remaining = self.pacer.buffered(self._clock.now())
            if remaining > 0.0 and out.turns:
                await self._sleep(remaining)
        await self._stop(interrupted=self._closed, push=True)

    async def _stop(self, *, interrupted: bool, push: bool) -> None:
        await self._stop_sender()
        out = self._out
        out.items.clear()
        out.current = None
        for turn in list(out.turns.values()):
            if push:
                await self._finish_turn(turn, interrupted=interrupted or not turn.all_sent)
            else:
                turn.finished = True
                if turn.fallback is not None:
                    turn.fallback.cancel()
                self.ledger.close_turn(turn.turn_id, interrupted=True)
        out.turns.clear()
        self._playing.clear()

    async def _stop_sender(self) -> None:
        if self._sender_task is not None:
            task, self._sender_task = self._sender_task, None
            await self.cancel_task(task)
