"""A cloud-shaped Deepgram TTS server (``/v1/speak``, REST and WebSocket), for load runs.

Wire protocol as Deepgram's (``Authorization: Token``). REST: ``POST /v1/speak`` with
``{"text"}`` and ``encoding``/``sample_rate``/``container=none`` in the query answers the raw
PCM16 as a streamed body. WebSocket: client ``Speak`` / ``Flush`` / ``Clear`` / ``Close``;
server binary PCM16, ``Flushed`` and ``Cleared`` with a ``sequence_id``. Shape: a text starts
sounding ``first_audio_s`` after it arrives (or after the previous text finished), lasts
``ms_per_char`` per character, and is streamed in ``chunk_ms`` pieces ``speed`` times faster
than real time. The audio is speech-like (a voiced buzz, ``bench.fakes.cloud_tts.speech_like``),
cut from one buffer made at start.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from bench.fakes.cloud_tts import speech_like

_BUFFER_S = 8.0


@dataclass
class SpeakStats:
    """Counters over every connection."""

    connections: int = 0
    refused: int = 0
    texts: int = 0
    audio_bytes: int = 0
    clears: int = 0


class ScriptedSpeak:
    """``/v1/speak`` handler (see the module docstring)."""

    path = "/v1/speak"

    def __init__(
        self,
        *,
        api_key: str,
        first_audio_s: float = 0.15,
        ms_per_char: float = 60.0,
        chunk_ms: int = 100,
        speed: float = 3.0,
    ) -> None:
        """Configure the latency shape."""
        self.api_key = api_key
        self.first_audio_s = first_audio_s
        self.ms_per_char = ms_per_char
        self.chunk_ms = chunk_ms
        self.speed = speed
        self.stats = SpeakStats()
        self._buffers: dict[int, bytes] = {}

    def audio(self, rate: int) -> bytes:
        """The speech-like buffer at ``rate`` (made once per rate)."""
        buffer = self._buffers.get(rate)
        if buffer is None:
            buffer = self._buffers[rate] = speech_like(_BUFFER_S, rate)
        return buffer

    async def handle_post(self, request: web.Request) -> web.StreamResponse:
        """One REST synthesis (one clause)."""
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            self.stats.refused += 1
            return web.Response(status=401, headers={"dg-error": "Invalid credentials."})
        rate = int(request.query.get("sample_rate", "24000"))
        text = str((await request.json()).get("text", ""))
        self.stats.texts += 1
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        buffer = self.audio(rate)
        chunk = rate * 2 * self.chunk_ms // 1000
        total = int(len(text) * self.ms_per_char / 1000.0 * rate) * 2
        due, sent = loop.time() + self.first_audio_s, 0
        while sent < total:
            await asyncio.sleep(max(0.0, due - loop.time()))
            size = min(chunk, total - sent)
            start = (sent % (len(buffer) - chunk)) // 2 * 2
            await response.write(buffer[start : start + size])
            sent += size
            self.stats.audio_bytes += size
            due += self.chunk_ms / 1000.0 / self.speed
        await response.write_eof()
        return response

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One speak socket (one call's TTS)."""
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            self.stats.refused += 1
            return web.Response(status=401, headers={"dg-error": "Invalid credentials."})
        rate = int(request.query.get("sample_rate", "24000"))
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        self.stats.connections += 1
        session = _SpeakSession(self, ws, rate)
        await session.run()
        return ws


class _SpeakSession:
    def __init__(self, owner: ScriptedSpeak, ws: web.WebSocketResponse, rate: int) -> None:
        self._owner = owner
        self._ws = ws
        self._rate = rate
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._flushes = 0
        self._offset = 0

    async def run(self) -> None:
        sender = asyncio.get_running_loop().create_task(self._sender())
        try:
            async for msg in self._ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                message = json.loads(msg.data)
                kind = message.get("type")
                if kind == "Speak":
                    self._owner.stats.texts += 1
                    self._queue.put_nowait(("speak", str(message.get("text", ""))))
                elif kind == "Flush":
                    self._queue.put_nowait(("flush", ""))
                elif kind == "Clear":
                    self._owner.stats.clears += 1
                    sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
                    self._queue = asyncio.Queue()
                    await self._send_json({"type": "Cleared", "sequence_id": self._flushes})
                    sender = asyncio.get_running_loop().create_task(self._sender())
                elif kind == "Close":
                    break
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await self._ws.close()

    async def _sender(self) -> None:
        owner, loop = self._owner, asyncio.get_running_loop()
        buffer = owner.audio(self._rate)
        chunk = self._rate * 2 * owner.chunk_ms // 1000
        pace = owner.chunk_ms / 1000.0 / owner.speed
        while True:
            kind, text = await self._queue.get()
            if kind == "flush":
                await self._send_json({"type": "Flushed", "sequence_id": self._flushes})
                self._flushes += 1
                continue
            total = int(len(text) * owner.ms_per_char / 1000.0 * self._rate) * 2
            due = loop.time() + owner.first_audio_s
            sent = 0
            while sent < total:
                await asyncio.sleep(max(0.0, due - loop.time()))
                size = min(chunk, total - sent)
                start = self._offset % (len(buffer) - chunk)
                start -= start % 2
                await self._ws.send_bytes(buffer[start : start + size])
                self._offset += size
                sent += size
                owner.stats.audio_bytes += size
                due += pace

    async def _send_json(self, body: dict) -> None:
        if not self._ws.closed:
            await self._ws.send_str(json.dumps(body))
