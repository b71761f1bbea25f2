"""The softphone page's side of ``/phone/ws``, scripted from Python (the page itself is tested in
Chromium under tests/web): wait for ``ready``, answer with ``connected`` + ``start`` under the
assigned identity, send 20 ms frames in the line format, echo marks, read page events."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from typing import Any

import aiohttp
import numpy as np
from aiohttp import WSMsgType
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.frames import TurnMetricsFrame, UserTurnCommittedFrame
from voiceagent.settings import Settings
from voiceagent.transports.twilio.line_format import MULAW_8K, PCM16_16K, LineFormat

WAIT_S = 5.0


def tone(line: LineFormat, frames: int, amplitude: int = 8000, hz: float = 440.0) -> list[bytes]:
    """``frames`` × 20 ms of a tone, encoded in the line format."""
    n = line.frame_samples * frames
    t = np.arange(n) / line.rate
    pcm = (amplitude * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes()
    audio = line.from_pcm16(pcm)
    return [audio[i : i + line.frame_bytes] for i in range(0, len(audio), line.frame_bytes)]


class PhoneLeg:
    """One page's socket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, line: LineFormat = MULAW_8K) -> None:
        self.ws = ws
        self.line = line
        self.ready: dict[str, Any] = {}
        self.received: list[dict[str, Any]] = []
        self.seq = 0
        self.chunk = 0
        self.echo_marks = True

    def _msg(self, event: str, **body: Any) -> str:
        self.seq += 1
        return json.dumps(
            {
                "event": event,
                "sequenceNumber": str(self.seq),
                "streamSid": self.ready["streamSid"],
                **body,
            }
        )

    async def answer(self, *, call_sid: str | None = None, parameters: dict | None = None) -> None:
        """Read ``ready`` (the server speaks first), then send ``connected`` and ``start``."""
        msg = await self.ws.receive(timeout=WAIT_S)
        assert msg.type is WSMsgType.TEXT, msg
        self.ready = json.loads(msg.data)
        assert (self.ready["event"], self.ready["type"]) == ("phone", "ready"), self.ready
        await self.ws.send_str(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        start = {
            "accountSid": "",
            "streamSid": self.ready["streamSid"],
            "callSid": call_sid or self.ready["callSid"],
            "tracks": ["inbound"],
            "mediaFormat": self.ready["mediaFormat"],
            "customParameters": parameters or {},
        }
        await self.ws.send_str(self._msg("start", start=start))

    async def say(self, frames: list[bytes], *, paced: bool = False) -> None:
        """Send caller audio, one 20 ms frame per message (at real time when ``paced``)."""
        for frame in frames:
            self.chunk += 1
            media = {
                "track": "inbound",
                "chunk": str(self.chunk),
                "timestamp": str(20 * (self.chunk - 1)),
                "payload": base64.b64encode(frame).decode(),
            }
            await self.ws.send_str(self._msg("media", media=media))
            if paced:
                await asyncio.sleep(0.02)

    async def hang_up(self) -> None:
        await self.ws.send_str(self._msg("stop", stop={"accountSid": "", "callSid": "x"}))

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("event") == "phone" and m.get("type") == kind]

    def media(self) -> list[bytes]:
        return [
            base64.b64decode(m["media"]["payload"])
            for m in self.received
            if m.get("event") == "media"
        ]

    async def listen_until(self, done, timeout: float = WAIT_S) -> bool:
        """Read (echoing marks) until ``done(self)`` or the timeout; whether it got there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done(self):
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                return False
            if msg.type is not WSMsgType.TEXT:
                return done(self)
            data = json.loads(msg.data)
            self.received.append(data)
            if data.get("event") == "mark" and self.echo_marks:
                await self.ws.send_str(self._msg("mark", mark=data["mark"]))
        return True

    async def closed(self, timeout: float = WAIT_S) -> int | None:
        """Read until the server closes the socket; its close code."""
        await self.listen_until(lambda leg: leg.ws.closed, timeout)
        return self.ws.close_code


class TurnAgent(FrameProcessor):
    """A test agent that makes every frame the page is told about, from caller audio alone.

    After ``frames_per_turn`` media frames (20 ms each) of caller audio: a partial, a final, a
    committed turn and its metrics, then a short spoken reply (TTS brackets, audio at 16 kHz,
    its text).
    """

    def __init__(self, frames_per_turn: int = 10) -> None:
        super().__init__()
        self.frames_per_turn = frames_per_turn
        self.heard = 0
        self.turns = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and direction is FrameDirection.DOWNSTREAM:
            # Counted in 20 ms of audio: the transport gathers media into longer frames.
            for _ in range(round(len(frame.audio) / (2 * frame.sample_rate * 0.02))):
                self.heard += 1
                if self.heard % self.frames_per_turn == 0:
                    await self._turn()

    async def _turn(self) -> None:
        self.turns += 1
        turn = self.turns
        await self.push_frame(InterimTranscriptionFrame("Hello", "caller", "t"))
        await self.push_frame(TranscriptionFrame("Hello there.", "caller", "t"))
        await self.push_frame(
            UserTurnCommittedFrame(turn_id=turn, text="Hello there.", reason="final")
        )
        await self.push_frame(
            TurnMetricsFrame(turn_id=turn, data={"silence_s": 0.4, "turn_id": turn})
        )
        await self.push_frame(TTSStartedFrame(context_id=f"reply-{turn}"))
        pcm = tone(PCM16_16K, 20)  # 400 ms at the pipeline's 16 kHz
        for chunk in pcm:
            await self.push_frame(TTSAudioRawFrame(chunk, 16000, 1, context_id=f"reply-{turn}"))
        await self.push_frame(TTSTextFrame("Hi, how can I help?", "sentence"))
        await self.push_frame(TTSStoppedFrame(context_id=f"reply-{turn}"))


class TurnFactory:
    """Pipeline factory: one :class:`TurnAgent` per call."""

    def __init__(self, frames_per_turn: int = 10) -> None:
        self.frames_per_turn = frames_per_turn
        self.agents: list[TurnAgent] = []
        self.calls: list[Any] = []

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        self.calls.append(call)
        agent = TurnAgent(self.frames_per_turn)
        self.agents.append(agent)
        return [agent]
