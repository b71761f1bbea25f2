"""A small fake voiceagent server (the other end of a Twilio Media Streams call) for emulator tests.

It records every message the caller emulator sends, with its arrival time, and behaves like a
very simple agent: when the caller stops speaking (or presses ``#``), it answers with a tone sent
in parts, each followed by a mark; optionally it sends ``clear`` when the caller talks over it
(barge-in), or misbehaves on purpose.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from dataclasses import dataclass, field

import numpy as np
from aiohttp import WSMsgType, web

from voiceagent.emulator.audio import ulaw_decode, ulaw_encode

SPEECH_RMS = 500.0


def tone_pcm8k(seconds: float, freq: float = 440.0, amplitude: float = 8000.0) -> bytes:
    """A sine tone as 8 kHz PCM16 (stands in for speech)."""
    n = round(seconds * 8000)
    t = np.arange(n) / 8000.0
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


def rms(pcm16: bytes) -> float:
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def window_rms(pcm16: bytes, start_s: float, end_s: float) -> float:
    """RMS of the stretch ``[start_s, end_s)`` of 8 kHz PCM16."""
    return rms(pcm16[round(start_s * 8000) * 2 : round(end_s * 8000) * 2])


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    msg: dict


@dataclass
class FakeAgentServer:
    """Answers each caller line with ``reply_parts`` tone parts of ``part_s`` seconds + marks."""

    part_s: float = 0.25
    reply_parts: int = 2
    silence_to_reply_s: float = 0.2
    clear_on_barge_in: bool = False
    junk_on_start: list = field(default_factory=list)
    close_after_s: float | None = None
    received: list[Received] = field(default_factory=list)
    sent: list[tuple[float, dict]] = field(default_factory=list)
    url: str = ""

    async def __aenter__(self) -> FakeAgentServer:
        app = web.Application()
        app.router.add_get("/media", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/media"
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()

    def messages(self, event: str) -> list[Received]:
        return [r for r in self.received if r.msg.get("event") == event]

    async def _send(self, ws: web.WebSocketResponse, msg: dict) -> None:
        self.sent.append((time.monotonic(), msg))
        await ws.send_str(json.dumps(msg))

    async def _reply(self, ws: web.WebSocketResponse, sid: str, turn: int) -> None:
        for part in range(self.reply_parts):
            payload = base64.b64encode(ulaw_encode(tone_pcm8k(self.part_s))).decode()
            media = {"event": "media", "streamSid": sid, "media": {"payload": payload}}
            await self._send(ws, media)
            await self._send(
                ws, {"event": "mark", "streamSid": sid, "mark": {"name": f"t{turn}-p{part}"}}
            )

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = ""
        speech_chunks = silence_chunks = turn = 0
        in_speech = False
        outstanding: set[str] = set()
        closer = None
        async for raw in ws:
            if raw.type != WSMsgType.TEXT:
                continue
            msg = json.loads(raw.data)
            self.received.append(Received(time.monotonic(), msg))
            event = msg["event"]
            if event == "start":
                sid = msg["streamSid"]
                for junk in self.junk_on_start:
                    if isinstance(junk, bytes):
                        await ws.send_bytes(junk)
                    else:
                        await ws.send_str(junk if isinstance(junk, str) else json.dumps(junk))
                if self.close_after_s is not None:
                    closer = asyncio.get_running_loop().call_later(
                        self.close_after_s, lambda: asyncio.ensure_future(ws.close())
                    )
            elif event == "mark":
                outstanding.discard(msg["mark"]["name"])
            elif event == "dtmf" and msg["dtmf"]["digit"] == "#":
                outstanding |= {f"t{turn}-p{p}" for p in range(self.reply_parts)}
                await self._reply(ws, sid, turn)
                turn += 1
            elif event == "media":
                loud = rms(ulaw_decode(base64.b64decode(msg["media"]["payload"]))) > SPEECH_RMS
                speech_chunks = speech_chunks + 1 if loud else 0
                silence_chunks = 0 if loud else silence_chunks + 1
                if speech_chunks >= 3 and not in_speech:
                    in_speech = True
                    if self.clear_on_barge_in and outstanding:
                        await self._send(ws, {"event": "clear", "streamSid": sid})
                if in_speech and silence_chunks * 0.02 >= self.silence_to_reply_s - 1e-9:
                    in_speech = False
                    outstanding |= {f"t{turn}-p{p}" for p in range(self.reply_parts)}
                    await self._reply(ws, sid, turn)
                    turn += 1
        if closer is not None:
            closer.cancel()
        return ws
