"""The aiohttp server: handshake (auth, query), one ``LiveConnection`` per socket, records."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from aiohttp import web
from loguru import logger

from bench.fakes.deepgram_live.connection import ConnectionRecord, LiveConnection
from bench.fakes.deepgram_live.protocol import QueryError, parse_listen_query
from bench.fakes.deepgram_live.recognizers import Recognizer
from bench.fakes.deepgram_live.segmenter import StreamOptions
from bench.fakes.deepgram_live.speech import AudioFormatError, AudioInput, SileroModel

DEFAULT_API_KEY = "dg-live-key"
_RECORDS_KEPT = 512


class DeepgramLiveServer:
    """A Deepgram live-transcription server (``GET /v1/listen``) on 127.0.0.1.

    ``async with DeepgramLiveServer(WhisperRecognizer()) as server:`` then point a client at
    ``server.url`` (``CloudSettings.deepgram_url``) with ``Authorization: Token <api_key>``.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        recognition_delay_s: float = 0.0,
        interim_interval_s: float = 0.1,
        idle_timeout_s: float = 10.0,
        stream: StreamOptions | None = None,
        routes: Callable[[web.Application], None] | None = None,
    ) -> None:
        """Describe the server (``start`` loads the recognizer and listens).

        Args:
            recognizer: ``WhisperRecognizer`` (real) or ``ScriptedRecognizer`` (told the script).
            api_key: The key clients must send (``Authorization: Token <key>``).
            host: Interface to listen on (loopback by default).
            port: TCP port; 0 picks a free one (read ``port`` after start).
            recognition_delay_s: Extra latency of every result (a slow STT); a connection's
                ``x_delay_ms`` query parameter overrides it.
            interim_interval_s: Interim cadence (a tick finding a decode running is skipped).
            idle_timeout_s: Close 1011 after this long without audio or a control message.
            stream: Segmentation constants (window lengths, pauses); the query's options
                (endpointing, interim_results, ...) are set per connection.
            routes: Adds other routes to the same app (e.g. ``/v1/speak``: one Deepgram host
                for STT and TTS, as voiceagent's one ``deepgram_url`` expects).
        """
        if recognition_delay_s < 0 or interim_interval_s <= 0 or idle_timeout_s <= 0:
            raise ValueError("delays must be ≥ 0 and the interim interval and idle timeout > 0")
        self.recognizer = recognizer
        self.api_key = api_key
        self.host = host
        self.port = port
        self.recognition_delay_s = recognition_delay_s
        self.idle_timeout_s = idle_timeout_s
        self.stream = replace(stream or StreamOptions(), interim_interval_s=interim_interval_s)
        self.handshakes = 0
        self.refused: list[int] = []
        self.connections: deque[ConnectionRecord] = deque(maxlen=_RECORDS_KEPT)
        self.active = 0
        self._vad: SileroModel | None = None
        self._runner: web.AppRunner | None = None
        self._routes = routes

    @property
    def instrument(self) -> str:
        """What a figure made against this server must name."""
        delay = self.recognition_delay_s
        return self.recognizer.instrument + (
            f", +{delay * 1000:.0f} ms recognition delay" if delay else ""
        )

    @property
    def url(self) -> str:
        """Base URL for clients (``CloudSettings.deepgram_url``)."""
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        """Load the recognizer and the speech detector, then listen."""
        await self.recognizer.start()
        self._vad = await asyncio.to_thread(SileroModel)
        app = web.Application()
        app.router.add_get("/v1/listen", self._handle)
        if self._routes is not None:
            self._routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.recognizer.stop()

    async def __aenter__(self) -> DeepgramLiveServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.handshakes += 1
        request_id = str(uuid.uuid4())
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            return self._refuse(401, "INVALID_AUTH", "Invalid credentials.", request_id)
        try:
            options = parse_listen_query(request.query)
            AudioInput(options.encoding, options.sample_rate)
        except (QueryError, AudioFormatError) as e:
            return self._refuse(400, "Bad Request", str(e), request_id)
        delay = self.recognition_delay_s if options.delay_s is None else options.delay_s
        record = ConnectionRecord(request_id, dict(request.query), options, delay)
        self.connections.append(record)
        stream = replace(
            self.stream,
            endpointing_s=options.endpointing_s,
            interim_results=options.interim_results,
            utterance_end_s=options.utterance_end_s,
            vad_events=options.vad_events,
        )
        ws = web.WebSocketResponse(heartbeat=None)
        ws.headers["dg-request-id"] = request_id
        await ws.prepare(request)
        assert self._vad is not None
        session = self.recognizer.open(request.query)
        self.active += 1
        try:
            await LiveConnection(
                ws, record, session, self._vad, stream, idle_timeout_s=self.idle_timeout_s
            ).run()
        finally:
            self.active -= 1
        return ws

    def _refuse(self, status: int, code: str, message: str, request_id: str) -> web.Response:
        self.refused.append(status)
        logger.warning(f"deepgram-live: refused a handshake: HTTP {status} {message}")
        body = {"err_code": code, "err_msg": message, "request_id": request_id}
        return web.Response(
            status=status,
            headers={"dg-error": message, "dg-request-id": request_id},
            content_type="application/json",
            text=json.dumps(body),
        )
