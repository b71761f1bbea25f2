"""One ``/v1/listen`` WebSocket: audio in, the segmenter's decisions carried out, messages out.

Everything per frame is cheap and runs on the event loop (μ-law/resampling, the segmenter) but
the Silero windows, which wait for the server's next batch (all streams' windows due together,
one run); decodes run in the recognizer's threads. Each result is sent
``delay_s`` after its decode finished (the extra recognition latency of a slow STT), in the
order the decodes ran; ``SpeechStarted`` goes out at once (it comes from the detector, not
from recognition).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from loguru import logger

from bench.fakes.deepgram_live.protocol import (
    ListenOptions,
    metadata_message,
    results_message,
    speech_started_message,
    utterance_end_message,
)
from bench.fakes.deepgram_live.recognizers import RecognitionSession, Word
from bench.fakes.deepgram_live.segmenter import (
    Action,
    Decode,
    Job,
    SpeechStarted,
    StreamOptions,
    StreamSegmenter,
    UtteranceEnd,
)
from bench.fakes.deepgram_live.speech import RATE, AudioInput, SileroModel, SpeechDetector

CLOSE_FLUSH_TIMEOUT_S = 15.0
_BYTES_PER_S_16K = RATE * 2
_LOUD_BAD_MESSAGES = 3


@dataclass
class SentMessage:
    """One message as it left the server."""

    audio_s: float  # client audio received by then (seconds of the stream)
    at: float  # time.monotonic()
    body: dict[str, Any]


@dataclass
class ConnectionRecord:
    """What one connection asked for, sent and received (for tests and reports)."""

    request_id: str
    query: dict[str, str]
    options: ListenOptions
    delay_s: float
    opened_at: float = field(default_factory=time.monotonic)
    sent: list[SentMessage] = field(default_factory=list)
    controls: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0
    audio_s: float = 0.0
    first_audio_at: float | None = None
    decode_s: list[float] = field(default_factory=list)
    interims_skipped: int = 0
    bad_messages: int = 0
    close_code: int | None = None
    closed_by: str = ""  # client | close_stream | idle | server

    def of(self, kind: str) -> list[SentMessage]:
        """Sent messages of one ``type``."""
        return [m for m in self.sent if m.body.get("type") == kind]


class LiveConnection:
    """Serves one accepted WebSocket until it closes."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        record: ConnectionRecord,
        session: RecognitionSession,
        vad: SileroModel,
        stream: StreamOptions,
        *,
        idle_timeout_s: float,
    ) -> None:
        self.ws = ws
        self.record = record
        self.options = record.options
        self.session = session
        self.segmenter = StreamSegmenter(stream)
        self.audio = AudioInput(self.options.encoding, self.options.sample_rate)
        self.detector = SpeechDetector(vad)
        self.idle_timeout_s = idle_timeout_s
        self._buffer = bytearray()  # 16 kHz PCM16 from _buffer_start_s on
        self._buffer_start_s = 0.0
        self._sha = hashlib.sha256()
        self._outbox: asyncio.Queue[tuple[float, Job | None, Any]] = asyncio.Queue()
        self._decodes: set[asyncio.Task] = set()
        self._drained = asyncio.Event()
        self._drained.set()

    async def run(self) -> None:
        """Read until the client closes, sends ``CloseStream`` or goes idle."""
        sender = asyncio.create_task(self._send_loop())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.idle_timeout_s
        try:
            while not self.ws.closed:
                try:
                    msg = await self.ws.receive(timeout=max(0.0, deadline - loop.time()))
                except TimeoutError:
                    if loop.time() >= deadline:
                        await self._close_idle()
                        break
                    continue
                if msg.type == WSMsgType.BINARY:
                    if not msg.data:  # an empty binary message closes the stream
                        await self._close_stream()
                        break
                    deadline = loop.time() + self.idle_timeout_s
                    await self._on_audio(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    deadline = loop.time() + self.idle_timeout_s
                    if await self._on_text(msg.data):
                        break
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    self.record.closed_by = self.record.closed_by or "client"
                    break
        finally:
            self.record.interims_skipped = self.segmenter.interims_skipped
            for task in [*self._decodes, sender]:
                task.cancel()
            await asyncio.gather(*self._decodes, sender, return_exceptions=True)
            self.session.close()
            self.record.close_code = self.ws.close_code

    # -- input ---------------------------------------------------------------------------------

    async def _on_audio(self, data: bytes) -> None:
        record = self.record
        if record.first_audio_at is None:
            record.first_audio_at = time.monotonic()
        record.audio_bytes += len(data)
        record.audio_s = record.audio_bytes / self.audio.bytes_per_s()
        self._sha.update(data)
        pcm = self.audio.to_pcm16k(data)
        if self.session.keeps_audio:
            self._buffer += pcm
        for frame in await self.detector.feed(pcm):
            self.session.observe(frame)
            self._carry_out(self.segmenter.on_frame(frame))
        if self.session.keeps_audio:
            self._trim_buffer()

    async def _on_text(self, data: str) -> bool:
        """Handle a control message; True when the connection is done."""
        try:
            message = json.loads(data)
            kind = message.get("type") if isinstance(message, dict) else None
        except ValueError:
            message, kind = None, None
        if message is not None:
            self.record.controls.append(message if isinstance(message, dict) else {"raw": data})
        if kind == "KeepAlive":
            return False
        if kind == "Finalize":
            self._carry_out(self.segmenter.finalize())
            return False
        if kind == "CloseStream":
            await self._close_stream()
            return True
        self.record.bad_messages += 1
        log = logger.warning if self.record.bad_messages <= _LOUD_BAD_MESSAGES else logger.debug
        log(f"deepgram-live {self.record.request_id}: ignoring text message {data[:80]!r}")
        return False

    # -- actions -------------------------------------------------------------------------------

    def _carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Decode):
                job = action.job
                audio = self._window_audio(job) if job.needs_decode else b""
                self._drained.clear()
                task = asyncio.create_task(self._decode(job, audio))
                self._decodes.add(task)
                task.add_done_callback(self._decodes.discard)
            elif isinstance(action, SpeechStarted):
                self._send_soon(speech_started_message(action.timestamp))
            elif isinstance(action, UtteranceEnd):
                self._outbox.put_nowait((0.0, None, utterance_end_message(action.last_word_end)))

    async def _decode(self, job: Job, audio: bytes) -> None:
        words: list[Word] = []
        if job.needs_decode:
            started = time.monotonic()
            try:
                words = await self.session.recognize(job, audio)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                logger.error(f"deepgram-live {self.record.request_id}: decode failed: {e!r}")
            self.record.decode_s.append(time.monotonic() - started)
        self._outbox.put_nowait((time.monotonic() + self.record.delay_s, job, words))
        self._carry_out(self.segmenter.decoded(job))

    async def _send_loop(self) -> None:
        while True:
            due, job, payload = await self._outbox.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if job is None:
                await self._send(payload)
                continue
            words: list[Word] = payload
            body = results_message(
                job,
                words,
                punctuate=self.options.punctuate,
                request_id=self.record.request_id,
                model=self.options.model,
            )
            if job.final or self.options.interim_results:
                await self._send(body)
            self._carry_out(self.segmenter.emitted(job, words[-1].end if words else None))
            if self.segmenter.idle:
                self._drained.set()

    def _send_soon(self, body: dict[str, Any]) -> None:
        task = asyncio.create_task(self._send(body))
        self._decodes.add(task)
        task.add_done_callback(self._decodes.discard)

    async def _send(self, body: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        self.record.sent.append(SentMessage(self.record.audio_s, time.monotonic(), body))
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(json.dumps(body))

    # -- audio buffer --------------------------------------------------------------------------

    def _window_audio(self, job: Job) -> bytes:
        first = max(0, int(round((job.start - self._buffer_start_s) * RATE)) * 2)
        last = max(first, int(round((job.end - self._buffer_start_s) * RATE)) * 2)
        return bytes(self._buffer[first:last])

    def _trim_buffer(self) -> None:
        drop = int((self.segmenter.keep_from - self._buffer_start_s) * RATE) * 2
        if drop >= _BYTES_PER_S_16K:  # trim in whole seconds: cheap and rare
            del self._buffer[:drop]
            self._buffer_start_s += drop / _BYTES_PER_S_16K

    # -- closing -------------------------------------------------------------------------------

    async def _close_stream(self) -> None:
        """``CloseStream``: finalize, let every result out, send ``Metadata``, close."""
        self.record.closed_by = "close_stream"
        self._carry_out(self.segmenter.close())
        if not self.segmenter.idle:
            self._drained.clear()
        try:
            await asyncio.wait_for(self._drained.wait(), CLOSE_FLUSH_TIMEOUT_S)
        except TimeoutError:
            logger.warning(
                f"deepgram-live {self.record.request_id}: results still pending at close"
            )
        for _ in range(400):  # an UtteranceEnd queued by the last result goes first
            if self._outbox.empty():
                break
            await asyncio.sleep(0.005)
        await self._send(
            metadata_message(self.record.request_id, self._sha.hexdigest(), self.record.audio_s)
        )
        await self.ws.close(code=1000)

    async def _close_idle(self) -> None:
        self.record.closed_by = "idle"
        logger.info(
            f"deepgram-live {self.record.request_id}: no audio or KeepAlive for "
            f"{self.idle_timeout_s:.1f} s: closing (1011 NET-0001)"
        )
        await self.ws.close(code=1011, message=b"NET-0001")
