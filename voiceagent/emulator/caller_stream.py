"""One connected Media Streams call, played from Twilio's side of the socket.

:class:`CallerStream` sends ``connected``, ``start``, a 20 ms μ-law ``media`` message at
real-time pace (through the line condition), ``dtmf``, mark echoes and ``stop``; it reads the
agent's ``media``, ``mark`` and ``clear`` into a :class:`PlaybackTimeline` and builds the
:class:`CallReport`. :class:`~voiceagent.emulator.caller.CallerEmulator` places the call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from loguru import logger

from voiceagent.clock import MonotonicClock
from voiceagent.emulator.conditions import LineCondition
from voiceagent.emulator.line import LinkLoss, PhoneLine, speech_rms
from voiceagent.emulator.playback import PlaybackTimeline
from voiceagent.emulator.report import CallReport, TurnReport
from voiceagent.emulator.script import CHUNK_S, CallScript

if TYPE_CHECKING:
    from voiceagent.emulator.caller import CallerEmulator

CLOSE_TIMEOUT_S = 5.0
_LOUD_MALFORMED = 20  # log this many malformed server messages at warning level, then debug

EventCallback = Callable[[str, dict], None]


class CallerStream:
    """One connected call: a paced sender, a reader, a writer and the playback timeline."""

    def __init__(
        self,
        emulator: CallerEmulator,
        ws: aiohttp.ClientWebSocketResponse,
        plan: CallScript,
        on_event: EventCallback | None,
        condition: LineCondition | None = None,
    ) -> None:
        self._em = emulator
        self._ws = ws
        self._plan = plan
        self._on_event = on_event
        self._clock = MonotonicClock()
        self._timeline = PlaybackTimeline(self._clock, on_mark=self._echo_mark, on_event=self._emit)
        self._outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._seq = 1
        self._closed = asyncio.Event()  # the line is dead: server closed or sending failed
        self._ended = asyncio.Event()  # Twilio's side ends the stream (``hang_up``)
        self._send_stop = True
        self._stopping = False  # we sent (or gave up sending) stop; ignore the server now
        self._end_s = 0.0
        self.closed_by_server = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.marks_echoed = 0
        self.malformed = 0
        self._line: PhoneLine | None = None
        self._link: LinkLoss | None = None
        self._held: deque[tuple[float, dict[str, Any]]] = deque()  # late media (jitter)
        if condition is not None and condition.alters_audio:
            level = speech_rms([line.pcm8k for line in plan.lines])
            self._line = PhoneLine(condition, level)
        if condition is not None and condition.alters_network:
            self._link = LinkLoss(condition)
        self.sends_late = 0
        self.send_late_max_s = 0.0

    async def run(self) -> CallReport:
        """Start the stream, follow the script, hang up and report what the caller observed."""
        em = self._em
        self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        start = {
            "accountSid": em.account_sid,
            "streamSid": em.stream_sid,
            "callSid": em.call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": dict(em.custom_parameters),
        }
        self._stream_event("start", start=start)
        self._timeline.start()
        writer = asyncio.create_task(self._writer(), name="caller-writer")
        reader = asyncio.create_task(self._reader(), name="caller-reader")
        try:
            await self._stream()
        finally:
            self._end_s = self._timeline.now_s()
            heard = self._timeline.finish()
            await self._hang_up(writer, reader)
        return self._report(heard)

    # ----- sending --------------------------------------------------------------------------

    def _stream_event(self, event: str, **body: Any) -> None:
        """Queue ``{"event", "sequenceNumber", "streamSid", **body}``."""
        self._send(
            {"event": event, "sequenceNumber": None, "streamSid": self._em.stream_sid, **body}
        )

    def _send(self, msg: dict[str, Any]) -> None:
        """Queue a message for the writer, numbering it (every event but ``connected``)."""
        if self._stopping or self._closed.is_set():
            return
        if msg["event"] != "connected":
            msg["sequenceNumber"] = str(self._seq)
            self._seq += 1
        self._outbox.put_nowait(msg)

    async def _writer(self) -> None:
        while (msg := await self._outbox.get()) is not None:
            try:
                await self._ws.send_str(json.dumps(msg))
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as e:
                logger.info(f"caller emulator: cannot send ({e!r}); the line is dead")
                self._closed.set()
                return

    def end_stream(self, *, send_stop: bool = True) -> None:
        """Stop the script at the next chunk; the call then hangs up (``stop`` unless not)."""
        self._send_stop = send_stop
        self._ended.set()

    async def _stream(self) -> None:
        """Send one 20 ms media message per tick at real-time pace until the script is done."""
        t0 = self._clock.now() - self._timeline.now_s()
        chunk = 0
        while not self._closed.is_set() and not self._ended.is_set():
            delay = t0 + (chunk + 1) * CHUNK_S - self._clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < 0.0:
                self.send_late_max_s = max(self.send_late_max_s, -delay)
                if delay <= -CHUNK_S:
                    self.sends_late += 1
            if self._closed.is_set() or self._ended.is_set():
                break
            now_s = (chunk + 1) * CHUNK_S
            step = self._plan.step(now_s, self._timeline.agent_state())
            for kind, data in step.events:
                self._emit(kind, data)
            if step.done:
                break
            audio = step.chunk
            if self._line is not None:
                audio = self._line.carry(audio, now_s, self._timeline.heard_pcm)
            media = {
                "track": "inbound",
                "chunk": str(chunk + 1),
                "timestamp": str(chunk * 20),
                "payload": base64.b64encode(audio).decode("ascii"),
            }
            self._send_media(media, now_s)
            for digit in step.digits:
                self._stream_event("dtmf", dtmf={"track": "inbound_track", "digit": digit})
            chunk += 1
        while self._held:  # what the link still holds arrives before the hang-up
            self._stream_event("media", media=self._held.popleft()[1])

    def _send_media(self, media: dict[str, Any], now_s: float) -> None:
        """Send (or, under a lossy/jittery line condition, lose or hold back) one media message."""
        link = self._link
        if link is None:
            self._stream_event("media", media=media)
            return
        if not link.lose():
            self._held.append((link.arrival(now_s), media))
        while self._held and self._held[0][0] <= now_s + 1e-9:
            self._stream_event("media", media=self._held.popleft()[1])

    async def _hang_up(self, writer: asyncio.Task, reader: asyncio.Task) -> None:
        em = self._em
        if not self._closed.is_set() and self._send_stop:
            self._stream_event("stop", stop={"accountSid": em.account_sid, "callSid": em.call_sid})
        self._stopping = True
        self._outbox.put_nowait(None)
        try:
            await asyncio.wait([writer], timeout=CLOSE_TIMEOUT_S)
            try:
                await asyncio.wait_for(self._ws.close(), CLOSE_TIMEOUT_S)
            except (TimeoutError, ConnectionError, aiohttp.ClientError) as e:
                logger.debug(f"caller emulator: close: {e!r}")
            await asyncio.wait([reader], timeout=CLOSE_TIMEOUT_S)
        finally:
            for task in (writer, reader):
                if not task.done():
                    task.cancel()
        who = "server" if self.closed_by_server else "caller"
        self._emit("hangup", {"t": self._end_s, "by": who})
        logger.info(f"caller emulator: call ended by the {who} after {self._end_s:.1f} s")

    def _echo_mark(self, name: str) -> None:
        if self._stopping or self._closed.is_set():
            return
        self.marks_echoed += 1
        self._stream_event("mark", mark={"name": name})

    # ----- receiving ------------------------------------------------------------------------

    async def _reader(self) -> None:
        try:
            while True:
                msg = await self._ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
                    if msg.type is aiohttp.WSMsgType.CLOSE and not self._stopping:
                        self.close_code, self.close_reason = msg.data, msg.extra or ""
                    break
                if msg.type is aiohttp.WSMsgType.CLOSED:
                    break
                if self._stopping:
                    continue
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._handle_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._malformed("binary frame (Twilio error 31950)", repr(msg.data[:16]))
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    logger.warning(f"caller emulator: WebSocket error: {self._ws.exception()!r}")
                    break
        except (ConnectionError, aiohttp.ClientError) as e:
            logger.info(f"caller emulator: connection lost: {e!r}")
        finally:
            if not self._stopping:
                self.closed_by_server = True
                self._closed.set()

    def _handle_text(self, data: str) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            self._malformed("not JSON (Twilio error 31951)", data[:80])
            return
        if not isinstance(msg, dict):
            self._malformed("not a JSON object", data[:80])
            return
        event = msg.get("event")
        if msg.get("streamSid") != self._em.stream_sid:
            self._malformed(f"{event!r} with wrong streamSid (Twilio error 31951)", data[:120])
            return
        try:
            if event == "media":
                self._on_media(msg, data)
            elif event == "mark":
                mark = msg.get("mark")
                name = mark.get("name") if isinstance(mark, dict) else None
                if not isinstance(name, str):
                    self._malformed("mark without a name", data[:120])
                    return
                self._timeline.receive_mark(name)
            elif event == "clear":
                self._timeline.clear()
            else:
                self._malformed(f"unknown event {event!r} (Twilio error 31951)", data[:120])
        except Exception:  # a bug here must not end the call
            logger.exception(f"caller emulator: failed to handle {data[:120]!r}")
            self.malformed += 1

    def _on_media(self, msg: dict, data: str) -> None:
        media = msg.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            self._malformed("media without a payload", data[:120])
            return
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self._malformed("media payload is not base64", data[:120])
            return
        self._timeline.receive_media(audio)

    def _malformed(self, what: str, excerpt: str) -> None:
        self.malformed += 1
        log = logger.warning if self.malformed <= _LOUD_MALFORMED else logger.debug
        log(f"caller emulator: malformed server message: {what}: {excerpt!r}")

    # ----- reporting ------------------------------------------------------------------------

    def _emit(self, kind: str, data: dict) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, data)
        except Exception:
            logger.exception(f"caller emulator: on_event({kind!r}) raised")

    def _report(self, heard: bytes) -> CallReport:
        timeline, plan = self._timeline, self._plan
        starts = timeline.utterance_starts_s()
        done = [(i, end) for i, end in enumerate(plan.line_ends) if end is not None]
        turns = []
        for n, (i, end) in enumerate(done):
            until = done[n + 1][1] if n + 1 < len(done) else self._end_s
            first = next((s for s in starts if end - 1e-6 <= s < until), None)
            turns.append(
                TurnReport(
                    index=i,
                    caller_text=plan.lines[i].text,
                    caller_end_s=end,
                    first_agent_audio_s=first,
                    latency_ms=None if first is None else (first - end) * 1000.0,
                    agent_audio_s=timeline.played_s_between(end, until),
                    caller_start_s=plan.line_starts[i] or end,
                )
            )
        return CallReport(
            heard_pcm8k=heard,
            turns=turns,
            marks_received=timeline.marks_received,
            marks_echoed=self.marks_echoed,
            clears=timeline.clears,
            media_received=timeline.media_received,
            duration_s=self._end_s,
            closed_by_server=self.closed_by_server,
            malformed_messages=self.malformed,
            agent_glitches=timeline.glitches,
            agent_pauses=timeline.pauses,
            dtmf_sent=plan.digits_sent,
            media_lost=self._link.lost if self._link is not None else 0,
            agent_utterances_s=starts,
            stream_sid=self._em.stream_sid,
            call_sid=self._em.call_sid,
            close_code=self.close_code,
            close_reason=self.close_reason,
            sends_late=self.sends_late,
            send_late_max_ms=self.send_late_max_s * 1000.0,
        )
