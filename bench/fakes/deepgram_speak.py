"""A Deepgram-protocol text-to-speech fake (``/v1/speak``, REST and WebSocket), cloud-shaped.

``/v1/speak`` both ways Deepgram serves it (PROTOCOLS.md "Deepgram"; ``Authorization: Token``):

- REST: ``POST`` ``{"text"}`` → the audio streamed back (``container=none``), as voiceagent's
  Deepgram TTS asks for each clause;
- WebSocket: ``Speak`` buffers text, ``Flush`` synthesizes it (binary audio, then
  ``Flushed``), ``Clear`` drops what is being sent (``Cleared``), ``Close`` closes — as
  pipecat's ``DeepgramTTSService`` uses it.

Audio is in the query's ``encoding`` (``linear16`` or ``mulaw``) at its ``sample_rate``: a
voiced buzz with a syllable envelope (``cloud_tts.speech_like``), ``ms_per_char`` long, its
first bytes ``first_audio_s`` after the request, then streamed in ``chunk_ms`` pieces ``speed``
times faster than real time. Each text's audio is the start of one buffer per format, made
once (a load run's provider process must stay cheap). :class:`DeepgramSpeak` is the handler,
mounted on any aiohttp app (the load run's one Deepgram host, ``bench/fakes/providers.py``);
``bench/fakes/deepgram_tts.py`` serves it on its own host.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr
from aiohttp import WSMsgType, web

from bench.fakes.cloud_tts import speech_like
from voiceagent.transports.twilio.codec import pcm16_to_ulaw

SYNTH_RATE = 16000
_BUFFER_S = 8.0


@dataclass
class Synthesis:
    """One text synthesized (monotonic seconds)."""

    text: str
    requested_at: float
    first_audio_at: float | None = None
    cleared: bool = False


@dataclass
class SpeakStats:
    """Counters over every connection."""

    connections: int = 0
    refused: int = 0
    texts: int = 0
    audio_bytes: int = 0
    clears: int = 0


class DeepgramSpeak:
    """``/v1/speak`` handlers (see the module docstring); :meth:`mount` adds them to an app."""

    path = "/v1/speak"

    def __init__(
        self,
        *,
        api_key: str,
        first_audio_s: float = 0.15,
        ms_per_char: float = 60.0,
        chunk_ms: int = 40,
        speed: float = 4.0,
        keep_syntheses: bool = True,
    ) -> None:
        """Configure the latency shape; ``keep_syntheses=False`` keeps only the counters."""
        self.api_key = api_key
        self.first_audio_s = first_audio_s
        self.ms_per_char = ms_per_char
        self.chunk_ms = chunk_ms
        self.speed = speed
        self.keep_syntheses = keep_syntheses
        self.syntheses: list[Synthesis] = []
        self.stats = SpeakStats()
        self._buffers: dict[tuple[int, bool], bytes] = {}

    def mount(self, app: web.Application) -> None:
        """Serve ``/v1/speak`` (WebSocket and REST) on ``app``."""
        app.router.add_get(self.path, self.handle)
        app.router.add_post(self.path, self.handle_post)

    def authorized(self, request: web.Request) -> bool:
        """Whether the request carries this server's key (counted when it does not)."""
        ok = request.headers.get("Authorization", "") in (
            f"Token {self.api_key}",
            f"token {self.api_key}",
        )
        if not ok:
            self.stats.refused += 1
        return ok

    def audio(self, text: str, query: dict[str, str]) -> tuple[bytes, int]:
        """The text's audio in the query's format, and its bytes per chunk."""
        rate = int(query.get("sample_rate", "24000") or 24000)
        mulaw = query.get("encoding", "linear16") == "mulaw"
        width = 1 if mulaw else 2
        buffer = self._buffers.get((rate, mulaw))
        if buffer is None:
            buffer = self._buffers[(rate, mulaw)] = _speech_buffer(rate, mulaw)
        duration = max(self.chunk_ms / 1000.0, len(text.strip()) * self.ms_per_char / 1000.0)
        size = round(duration * rate) * width
        repeats = -(-size // len(buffer))
        audio = (buffer * repeats)[:size] if repeats > 1 else buffer[:size]
        return audio, max(width, round(rate * width * self.chunk_ms / 1000.0))

    def _synthesis(self, text: str) -> Synthesis:
        synthesis = Synthesis(text, time.monotonic())
        if self.keep_syntheses:
            self.syntheses.append(synthesis)
        return synthesis

    async def _stream(
        self,
        synthesis: Synthesis,
        audio: bytes,
        step: int,
        send: Callable[[bytes], Awaitable[Any]],
    ) -> None:
        due = synthesis.requested_at + self.first_audio_s
        for offset in range(0, len(audio), step):
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if synthesis.cleared:
                return
            if synthesis.first_audio_at is None:
                synthesis.first_audio_at = time.monotonic()
            piece = audio[offset : offset + step]
            await send(piece)
            self.stats.audio_bytes += len(piece)
            due += self.chunk_ms / 1000.0 / self.speed

    async def handle_post(self, request: web.Request) -> web.StreamResponse:
        """One REST synthesis (one clause)."""
        if not self.authorized(request):
            return web.Response(status=401, headers={"dg-error": "Invalid credentials."})
        text = str((await request.json()).get("text", ""))
        self.stats.texts += 1
        synthesis = self._synthesis(text)
        audio, step = self.audio(text, dict(request.query))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        try:
            await self._stream(synthesis, audio, step, response.write)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            synthesis.cleared = True
        return response

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One speak socket (one call's TTS)."""
        if not self.authorized(request):
            return web.Response(status=401, headers={"dg-error": "Invalid credentials."})
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        self.stats.connections += 1
        query = dict(request.query)
        pending: list[str] = []
        current: list[tuple[Synthesis, asyncio.Task[None]]] = []
        flushes = 0

        async def speak(text: str, sequence: int) -> None:
            synthesis = self._synthesis(text)
            audio, step = self.audio(text, query)
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
                self.stats.texts += 1
                pending.append(str(body.get("text", "")))
            elif kind == "Flush":
                text, pending = " ".join(pending), []
                flushes += 1
                if text.strip():
                    asyncio.create_task(speak(text, flushes))
                else:
                    await ws.send_str(json.dumps({"type": "Flushed", "sequence_id": flushes}))
            elif kind == "Clear":
                self.stats.clears += 1
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


def _speech_buffer(rate: int, mulaw: bool) -> bytes:
    """``_BUFFER_S`` of speech-like audio at ``rate`` (resampled from ``SYNTH_RATE``)."""
    pcm = speech_like(_BUFFER_S, SYNTH_RATE)
    if rate != SYNTH_RATE:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        out = soxr.resample(samples, SYNTH_RATE, rate, quality="HQ")
        pcm = (np.clip(out, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    return pcm16_to_ulaw(pcm) if mulaw else pcm
