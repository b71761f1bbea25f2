"""Test-only pipelines, a Twilio-like WebSocket caller and server helpers for tests/server."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pipecat.frames.frames import EndWorkerFrame, Frame, InputAudioRawFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.settings import Settings

ULAW_FRAME = 160  # 20 ms of 8 kHz μ-law
WAIT_S = 5.0


@dataclass
class Factory:
    """A test pipeline factory: records each call; can fail to build."""

    calls: list[Any] = field(default_factory=list)
    explode_for: set[str] = field(default_factory=set)
    fail_build: bool = False
    hang_up_after: int | None = None
    build_delay_s: float = 0.0

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        self.calls.append(call)
        if self.build_delay_s:
            await asyncio.sleep(self.build_delay_s)  # e.g. a slow model connection
        if self.fail_build:
            raise RuntimeError("cannot build this call's pipeline")
        return [EchoAgent(call, self.explode_for, self.hang_up_after)]


class EchoAgent(FrameProcessor):
    """Speaks the caller's audio back (InputAudioRawFrame → TTSAudioRawFrame → call.output).

    For callers listed in ``explode_for`` (their From parameter) it raises instead: a buggy
    stage inside one call. After ``hang_up_after`` audio frames it ends the call itself.
    """

    def __init__(self, call: Any, explode_for: set[str], hang_up_after: int | None) -> None:
        super().__init__()
        self._call = call
        self._explode_for = explode_for
        self._hang_up_after = hang_up_after
        self._heard = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            if self._call.custom_parameters.get("From") in self._explode_for:
                raise RuntimeError("stage blew up on caller audio")
            self._heard += 1
            if self._heard == self._hang_up_after:  # the agent ends the call (like end_call)
                await self.push_frame(
                    EndWorkerFrame(reason="agent hung up"), FrameDirection.UPSTREAM
                )
            await self.push_frame(
                TTSAudioRawFrame(
                    audio=frame.audio,
                    sample_rate=frame.sample_rate,
                    num_channels=frame.num_channels,
                    context_id="echo",
                )
            )
            return
        await self.push_frame(frame, direction)


def settings_for(**server: Any) -> Settings:
    return Settings(server={"host": "127.0.0.1", "port": 0, **server})


@asynccontextmanager
async def serving(
    settings: Settings,
    factory: Callable[..., Awaitable[list[FrameProcessor]]],
    *,
    app_hook: Callable[[web.Application], None] | None = None,
    **kwargs: Any,
) -> AsyncIterator[TestClient]:
    """An app on 127.0.0.1 with a client; everything closed afterwards."""
    from voiceagent.server.app import create_app

    app = create_app(settings, factory, **kwargs)
    if app_hook is not None:
        app_hook(app)
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


class TwilioLeg:
    """The Twilio side of one Media Stream, scripted message by message."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, call_sid: str, caller: str) -> None:
        self.ws = ws
        self.call_sid = call_sid
        self.caller = caller
        self.stream_sid = "MZ" + call_sid[2:]
        self.seq = 0
        self.chunk = 0
        self.received: list[dict[str, Any]] = []

    def _next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    async def connect_and_start(self) -> None:
        """Twilio's ``connected`` then ``start`` with the TwiML parameters."""
        await self.ws.send_str(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        await self.ws.send_str(
            json.dumps(
                {
                    "event": "start",
                    "sequenceNumber": self._next_seq(),
                    "streamSid": self.stream_sid,
                    "start": {
                        "accountSid": "AC" + "0" * 32,
                        "streamSid": self.stream_sid,
                        "callSid": self.call_sid,
                        "tracks": ["inbound"],
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                        "customParameters": {"From": self.caller, "To": "+15550199"},
                    },
                }
            )
        )

    async def say(self, frames: int, byte: int = 0x10) -> None:
        """``frames`` × 20 ms of caller audio (a loud constant μ-law value, not silence)."""
        payload = base64.b64encode(bytes([byte]) * ULAW_FRAME).decode()
        for _ in range(frames):
            self.chunk += 1
            await self.ws.send_str(
                json.dumps(
                    {
                        "event": "media",
                        "sequenceNumber": self._next_seq(),
                        "streamSid": self.stream_sid,
                        "media": {
                            "track": "inbound",
                            "chunk": str(self.chunk),
                            "timestamp": str(20 * (self.chunk - 1)),
                            "payload": payload,
                        },
                    }
                )
            )

    async def stop(self) -> None:
        await self.ws.send_str(
            json.dumps(
                {
                    "event": "stop",
                    "sequenceNumber": self._next_seq(),
                    "streamSid": self.stream_sid,
                    "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid},
                }
            )
        )

    async def hear_media(self, count: int, timeout: float = WAIT_S) -> int:
        """Wait until ``count`` media messages came back; return how many arrived."""
        got = sum(1 for m in self.received if m.get("event") == "media")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while got < count:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                break
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            self.received.append(data)
            if data.get("event") == "media":
                assert data["streamSid"] == self.stream_sid
                got += 1
        return got

    async def wait_closed(self, timeout: float = WAIT_S) -> int | None:
        """Read until the server closes the socket; return its close code."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ws.closed:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError("the server did not close the media socket in time")
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                continue
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.ERROR,
            ):
                break
        return self.ws.close_code


async def metric_value(client: TestClient, name: str) -> float:
    """One sample of the /metrics exposition (``name`` may carry labels)."""
    text = await (await client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    raise AssertionError(f"{name} not in /metrics:\n{text}")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT_S) -> bool:
    """Poll an async condition (server-side effects land asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return await check()
