"""A Deepgram-protocol text-to-speech server on loopback, with cloud-shaped timing, for benchmarks.

``/v1/speak`` both ways Deepgram serves it (PROTOCOLS.md "Deepgram"):

- REST: ``POST`` ``{"text"}`` → the audio streamed back (``container=none``), as voiceagent's
  Deepgram TTS asks for each clause;
- WebSocket: ``Speak`` buffers text, ``Flush`` synthesizes it (binary audio, then
  ``Flushed``), ``Clear`` drops what is being sent (``Cleared``), ``Close`` closes — as
  pipecat's ``DeepgramTTSService`` uses it.

Audio is in the query's ``encoding`` (``linear16`` or ``mulaw``) at its ``sample_rate``: a
voiced buzz with a syllable envelope (``cloud_tts.speech_like``), ``ms_per_char`` long, its
first bytes ``first_audio_s`` after the request, then streamed ``speed`` times faster than
real time. Both systems in ``vs_pipecat.py`` call the same server with the same timing.

With ``listen_url`` the same host also serves ``/v1/listen`` by relaying it, message for
message, to a Deepgram-protocol STT (``bench/fakes/deepgram_live``): one host for both, as
``api.deepgram.com`` is, so every client is configured with one URL.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import soxr
from aiohttp import WSMsgType, web

from bench.fakes.cloud_tts import speech_like
from voiceagent.transports.twilio.codec import pcm16_to_ulaw

API_KEY = "dg-bench-key"
SYNTH_RATE = 16000


@dataclass
class Synthesis:
    """One text synthesized (monotonic seconds)."""

    text: str
    requested_at: float
    first_audio_at: float | None = None
    cleared: bool = False


@dataclass
class DeepgramTTSServer:
    """``async with DeepgramTTSServer() as tts: tts.url`` (ws://) / ``tts.http_url``."""

    first_audio_s: float = 0.15
    ms_per_char: float = 60.0
    chunk_ms: int = 40
    speed: float = 4.0
    api_key: str = API_KEY
    listen_url: str | None = None
    listen_key: str = ""
    syntheses: list[Synthesis] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        """WebSocket base URL (pipecat's ``base_url``; voiceagent's ``deepgram_url``)."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """HTTP base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def instrument(self) -> str:
        """What this TTS is, for every figure made with it."""
        return (
            f"Deepgram-protocol TTS fake (bench/fakes/deepgram_tts.py): first audio "
            f"{self.first_audio_s * 1000:.0f} ms, {self.ms_per_char:.0f} ms/char, streamed "
            f"{self.speed:g}x real time"
        )

    async def __aenter__(self) -> DeepgramTTSServer:
        app = web.Application()
        app.router.add_get("/v1/speak", self._socket)
        app.router.add_post("/v1/speak", self._rest)
        if self.listen_url:
            app.router.add_get("/v1/listen", self._listen)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") in (
            f"Token {self.api_key}",
            f"token {self.api_key}",
        )

    def _encode(self, text: str, query: dict[str, str]) -> tuple[bytes, int, int]:
        """The text's audio in the query's format, with its bytes per chunk and per second."""
        rate = int(query.get("sample_rate", "24000") or 24000)
        duration = max(self.chunk_ms / 1000.0, len(text.strip()) * self.ms_per_char / 1000.0)
        pcm = speech_like(duration, SYNTH_RATE)
        if rate != SYNTH_RATE:
            import numpy as np

            samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
            out = soxr.resample(samples, SYNTH_RATE, rate, quality="HQ")
            pcm = (np.clip(out, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        width = 2
        if query.get("encoding", "linear16") == "mulaw":
            pcm, width = pcm16_to_ulaw(pcm), 1
        per_s = rate * width
        return pcm, max(width, round(per_s * self.chunk_ms / 1000.0)), per_s

    async def _stream(self, synthesis: Synthesis, audio: bytes, step: int, send) -> None:
        due = synthesis.requested_at + self.first_audio_s
        for offset in range(0, len(audio), step):
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if synthesis.cleared:
                return
            if synthesis.first_audio_at is None:
                synthesis.first_audio_at = time.monotonic()
            await send(audio[offset : offset + step])
            due += self.chunk_ms / 1000.0 / self.speed

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(status=401, headers={"dg-error": "Invalid credentials."})
        text = str((await request.json()).get("text", ""))
        synthesis = Synthesis(text, time.monotonic())
        self.syntheses.append(synthesis)
        audio, step, _ = self._encode(text, dict(request.query))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        try:
            await self._stream(synthesis, audio, step, response.write)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            synthesis.cleared = True
        return response

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        if not self._authorized(request):
            raise web.HTTPUnauthorized(headers={"dg-error": "Invalid credentials."})
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        query = dict(request.query)
        pending: list[str] = []
        current: list[tuple[Synthesis, asyncio.Task[None]]] = []
        flushes = 0

        async def speak(text: str, sequence: int) -> None:
            synthesis = Synthesis(text, time.monotonic())
            self.syntheses.append(synthesis)
            audio, step, _ = self._encode(text, query)
            task = asyncio.current_task()
            assert task is not None
            current.append((synthesis, task))
            try:
                await self._stream(synthesis, audio, step, ws.send_bytes)
                if not synthesis.cleared and not ws.closed:
                    await ws.send_str(json.dumps({"type": "Flushed", "sequence_id": sequence}))
            except (ConnectionError, RuntimeError):
                pass

        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            body: dict[str, Any] = json.loads(message.data)
            kind = body.get("type")
            if kind == "Speak":
                pending.append(str(body.get("text", "")))
            elif kind == "Flush":
                text, pending = " ".join(pending), []
                flushes += 1
                if text.strip():
                    asyncio.create_task(speak(text, flushes))
                else:
                    await ws.send_str(json.dumps({"type": "Flushed", "sequence_id": flushes}))
            elif kind == "Clear":
                pending.clear()
                for synthesis, _ in current:
                    synthesis.cleared = True
                current.clear()
                await ws.send_str(json.dumps({"type": "Cleared", "sequence_id": flushes}))
            elif kind == "Close":
                break
        for synthesis, task in current:
            synthesis.cleared = True
            task.cancel()
        return ws

    async def _listen(self, request: web.Request) -> web.WebSocketResponse:
        """Relay a live-transcription socket to the STT server, both ways, as is."""
        import aiohttp

        if not self._authorized(request):
            raise web.HTTPUnauthorized(headers={"dg-error": "Invalid credentials."})
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        url = f"{self.listen_url}/v1/listen?{request.query_string}"
        headers = {"Authorization": f"Token {self.listen_key}"}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, headers=headers, heartbeat=None) as upstream,
        ):

            async def down() -> None:
                async for message in upstream:
                    if message.type == WSMsgType.TEXT:
                        await ws.send_str(message.data)
                    elif message.type == WSMsgType.BINARY:
                        await ws.send_bytes(message.data)
                await ws.close()

            relay = asyncio.create_task(down())
            try:
                async for message in ws:
                    if message.type == WSMsgType.TEXT:
                        await upstream.send_str(message.data)
                    elif message.type == WSMsgType.BINARY:
                        await upstream.send_bytes(message.data)
            finally:
                await upstream.close()
                relay.cancel()
        return ws
