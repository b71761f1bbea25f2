"""Fake Deepgram streaming servers (aiohttp WebSocket, 127.0.0.1), faithful to the wire protocol.

``FakeDeepgramSTT`` serves ``/v1/listen``: it checks ``Authorization: Token <key>``, records the
query, reads binary audio and answers with scripted ``Results``: an interim (``is_final``
false) with the first words once ``interim_after_bytes`` of the utterance arrived, then on
``Finalize`` (or after ``final_after_bytes``) the final with ``speech_final`` and
``from_finalize``, then ``UtteranceEnd``. ``KeepAlive`` is counted; ``CloseStream`` answers
``Metadata`` and closes.

``FakeDeepgramTTS`` serves ``/v1/speak`` both ways Deepgram does: REST (``POST`` with
``{"text"}`` → PCM16, ``bytes_per_char`` per character, streamed in chunks of at most 3200
bytes; the voiceagent client) and WebSocket (``Speak`` → binary PCM16, ``Flush`` → ``Flushed``,
``Clear`` → ``Cleared``, ``Close`` → close).

Both can refuse the handshake (``reject_status`` 401/402/429 with a ``dg-error`` header, like
Deepgram) or go silent (accept and read, never answer).
"""

from __future__ import annotations

import array
import asyncio
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.loopback import start_loopback

_REASONS = {
    401: "Invalid credentials.",
    402: "Project does not have enough credits for this request.",
    429: "Too many requests. Please try again later.",
}


class _FakeDeepgram:
    """Common part: loopback server, auth header, refusals, recorded connections."""

    path = ""

    def __init__(self, *, api_key: str = "dg-test-key") -> None:
        self.api_key = api_key
        self.reject_status: int | None = None
        self.silent = False
        self.handshakes = 0
        self.refused: list[int] = []
        self.queries: list[dict[str, str]] = []
        self.extensions: list[str] = []  # what each accepted handshake offered
        self.messages: list[dict[str, Any]] = []
        self.connected = asyncio.Event()
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL to configure (``CloudSettings.deepgram_url``)."""
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self):
        app = web.Application()
        self.add_routes(app)
        self._runner, self.port = await start_loopback(app)
        return self

    def add_routes(self, app: web.Application) -> None:
        """The fake's endpoints on ``app``."""
        app.router.add_get(self.path, self._handle)

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def messages_of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def drop_connections(self, code: int = 1011) -> None:
        """Close every open socket from the server side (a network failure mid-call)."""
        for ws in list(self._sockets):
            await ws.close(code=code, message=b"NET-0001")

    def _refusal(self, request: web.Request) -> web.Response | None:
        status = self.reject_status
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            status = 401
        if status is None:
            return None
        self.refused.append(status)
        error = {"err_code": "REFUSED", "err_msg": _REASONS.get(status, "refused")}
        return web.Response(
            status=status,
            headers={"dg-error": _REASONS.get(status, "refused")},
            text=json.dumps(error),
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.handshakes += 1
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.queries.append(dict(request.query))
        self.extensions.append(request.headers.get("Sec-WebSocket-Extensions", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        self.connected.set()
        try:
            await self._session(ws)
        finally:
            self._sockets.discard(ws)
        return ws

    async def _session(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await self._on_binary(ws, msg.data)
            elif msg.type == WSMsgType.TEXT:
                message = json.loads(msg.data)
                message["_audio_bytes_before"] = len(getattr(self, "audio", b""))
                self.messages.append(message)
                if not self.silent and not await self._on_text(ws, message):
                    break
                if self.silent and message.get("type") in ("CloseStream", "Close"):
                    break
        await ws.close()

    async def _on_binary(self, ws: web.WebSocketResponse, data: bytes) -> None:
        return None

    async def _on_text(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> bool:
        """Answer one client message; False closes the socket."""
        return True


@dataclass
class FakeUtterance:
    """What the fake recognizes in one caller utterance."""

    words: list[str]
    interim_words: int = 1


@dataclass
class _Utterance:
    script: FakeUtterance
    start_s: float = 0.0
    audio_bytes: int = 0
    interim_sent: bool = False
    final_sent: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class FakeDeepgramSTT(_FakeDeepgram):
    """``/v1/listen``: scripted utterances, one after another (see the module docstring)."""

    path = "/v1/listen"

    def __init__(
        self,
        utterances: list[FakeUtterance] | None = None,
        *,
        interim_after_bytes: int = 6400,
        final_after_bytes: int | None = None,
        bytes_per_s: int = 32000,
        speech_rms: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.script = list(utterances or [])
        self.speech_rms = speech_rms
        """Audio quieter than this (PCM16 RMS) is silence: it does not advance an utterance."""
        self.interim_after_bytes = interim_after_bytes
        self.final_after_bytes = final_after_bytes
        self.bytes_per_s = bytes_per_s
        self.audio = bytearray()
        self.audio_messages: list[int] = []  # the size of each binary message
        self.results: list[dict[str, Any]] = []
        self._current: _Utterance | None = None
        self._stream_bytes = 0

    async def _on_binary(self, ws: web.WebSocketResponse, data: bytes) -> None:
        self.audio.extend(data)
        self.audio_messages.append(len(data))
        self._stream_bytes += len(data)
        if self.silent or (self.speech_rms and _rms(data) < self.speech_rms):
            return
        utterance = self._utterance()
        if utterance is None:
            return
        utterance.audio_bytes += len(data)
        if not utterance.interim_sent and utterance.audio_bytes >= self.interim_after_bytes:
            utterance.interim_sent = True
            words = utterance.script.words[: utterance.script.interim_words]
            await self._send_results(ws, utterance, words, is_final=False)
        if self.final_after_bytes is not None and utterance.audio_bytes >= self.final_after_bytes:
            await self._send_final(ws, utterance, from_finalize=False)

    async def _on_text(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        if kind == "Finalize":
            utterance = self._current
            if utterance is not None and utterance.interim_sent and not utterance.final_sent:
                await self._send_final(ws, utterance, from_finalize=True)
            else:  # nothing pending: Deepgram answers an empty from_finalize final
                await self._send(ws, self._results_body([], 0.0, 0.0, True, True, True))
        elif kind == "CloseStream":
            await self._send(
                ws,
                {
                    "type": "Metadata",
                    "transaction_key": "deprecated",
                    "request_id": str(uuid.uuid4()),
                    "created": "2026-01-01T00:00:00.000Z",
                    "duration": self._stream_bytes / self.bytes_per_s,
                    "channels": 1,
                },
            )
            return False
        return True

    def _utterance(self) -> _Utterance | None:
        if self._current is None or self._current.final_sent:
            if not self.script:
                return None
            self._current = _Utterance(self.script.pop(0), start_s=self._stream_s())
        return self._current

    def _stream_s(self) -> float:
        return self._stream_bytes / self.bytes_per_s

    async def _send_final(self, ws, utterance: _Utterance, *, from_finalize: bool) -> None:
        utterance.final_sent = True
        await self._send_results(
            ws, utterance, utterance.script.words, is_final=True, from_finalize=from_finalize
        )
        end = self._stream_s()
        await self._send(ws, {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": end})

    async def _send_results(
        self,
        ws,
        utterance: _Utterance,
        words: list[str],
        *,
        is_final: bool,
        from_finalize: bool = False,
    ) -> None:
        start = utterance.start_s
        duration = max(0.0, self._stream_s() - start)
        body = self._results_body(words, start, duration, is_final, is_final, from_finalize)
        self.results.append(body)
        await self._send(ws, body)

    @staticmethod
    def _results_body(
        words: list[str],
        start: float,
        duration: float,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool,
    ) -> dict[str, Any]:
        step = duration / max(1, len(words))
        items = [
            {
                "word": w.lower().strip(".,?!"),
                "start": start + i * step,
                "end": start + (i + 1) * step,
                "confidence": 0.98,
                "punctuated_word": w,
            }
            for i, w in enumerate(words)
        ]
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": duration,
            "start": start,
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {"transcript": " ".join(words), "confidence": 0.98, "words": items}
                ]
            },
            "metadata": {
                "request_id": "fake-request",
                "model_info": {"name": "2-general-nova", "version": "2026-01-01", "arch": "nova-3"},
                "model_uuid": "fake-model-uuid",
            },
        }

    @staticmethod
    async def _send(ws: web.WebSocketResponse, body: dict[str, Any]) -> None:
        if not ws.closed:
            await ws.send_str(json.dumps(body))


class FakeDeepgramTTS(_FakeDeepgram):
    """``/v1/speak``: text in, PCM16 out (see the module docstring)."""

    path = "/v1/speak"

    def __init__(self, *, bytes_per_char: int = 320, amplitude: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bytes_per_char = bytes_per_char
        self.amplitude = amplitude
        """0: near-silent samples; else a 500 Hz square wave (16 kHz) this loud."""
        self.spoken: list[str] = []
        self.audio_bytes_sent = 0
        self._flushes = 0

    async def _on_text(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        if kind == "Speak":
            text = message.get("text", "")
            self.spoken.append(text)
            audio = self._audio(len(text) * self.bytes_per_char // 2)
            for start in range(0, len(audio), 3200):
                if ws.closed:
                    return False
                await ws.send_bytes(audio[start : start + 3200])
                self.audio_bytes_sent += len(audio[start : start + 3200])
        elif kind == "Flush":
            await ws.send_str(json.dumps({"type": "Flushed", "sequence_id": self._flushes}))
            self._flushes += 1
        elif kind == "Clear":
            await ws.send_str(json.dumps({"type": "Cleared", "sequence_id": self._flushes}))
        elif kind == "Close":
            return False
        return True

    def add_routes(self, app: web.Application) -> None:
        """WebSocket and REST ``/v1/speak``."""
        super().add_routes(app)
        app.router.add_post(self.path, self._rest)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/speak``: one text, its audio streamed back (``container=none``)."""
        self.handshakes += 1
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.queries.append(dict(request.query))
        text = (await request.json()).get("text", "")
        self.spoken.append(text.strip())
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        if self.silent:
            await asyncio.sleep(3600)
        audio = self._audio(len(text) * self.bytes_per_char // 2)
        for start in range(0, len(audio), 3200):
            await response.write(audio[start : start + 3200])
            self.audio_bytes_sent += len(audio[start : start + 3200])
        await response.write_eof()
        return response

    def _audio(self, samples: int) -> bytes:
        if not self.amplitude:
            return bytes([1, 0]) * samples
        wave = array.array(
            "h", (self.amplitude if (i // 16) % 2 else -self.amplitude for i in range(samples))
        )
        return wave.tobytes()


def _rms(pcm16: bytes) -> float:
    samples = array.array("h", pcm16[: len(pcm16) // 2 * 2])
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


class FakeDeepgramHost:
    """One loopback host serving both fakes, as ``api.deepgram.com`` serves both endpoints."""

    def __init__(self, stt: FakeDeepgramSTT, tts: FakeDeepgramTTS) -> None:
        self.stt = stt
        self.tts = tts
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeDeepgramHost:
        app = web.Application()
        self.stt.add_routes(app)
        self.tts.add_routes(app)
        self._runner, self.port = await start_loopback(app)
        self.stt.port = self.tts.port = self.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        for fake in (self.stt, self.tts):
            for ws in list(fake._sockets):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
