"""A Deepgram-protocol text-to-speech host on loopback, with cloud-shaped timing, for benchmarks.

It serves ``bench.fakes.deepgram_speak.DeepgramSpeak`` (``/v1/speak``, REST and WebSocket; see
there for the protocol and the audio) on its own port. Both systems in ``vs_pipecat.py`` call
the same server with the same timing.

With ``listen_url`` the same host also serves ``/v1/listen`` by relaying it, message for
message, to a Deepgram-protocol STT (``bench/fakes/deepgram_live``): one host for both, as
``api.deepgram.com`` is, so every client is configured with one URL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from bench.fakes.deepgram_speak import DeepgramSpeak, Synthesis

__all__ = ["API_KEY", "DeepgramTTSServer", "Synthesis"]

API_KEY = "dg-bench-key"


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
    port: int = 0
    speak: DeepgramSpeak = field(init=False)

    def __post_init__(self) -> None:
        self.speak = DeepgramSpeak(
            api_key=self.api_key,
            first_audio_s=self.first_audio_s,
            ms_per_char=self.ms_per_char,
            chunk_ms=self.chunk_ms,
            speed=self.speed,
        )

    @property
    def syntheses(self) -> list[Synthesis]:
        """Every text synthesized, in order."""
        return self.speak.syntheses

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
            f"Deepgram-protocol TTS fake (bench/fakes/deepgram_speak.py): first audio "
            f"{self.first_audio_s * 1000:.0f} ms, {self.ms_per_char:.0f} ms/char, streamed "
            f"{self.speed:g}x real time"
        )

    async def __aenter__(self) -> DeepgramTTSServer:
        app = web.Application()
        self.speak.mount(app)
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

    async def _listen(self, request: web.Request) -> web.WebSocketResponse:
        """Relay a live-transcription socket to the STT server, both ways, as is."""
        import aiohttp

        if not self.speak.authorized(request):
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
