"""Test rig for the Twilio transport: a scripted Twilio side and a running pipeline.

``TwilioScript`` writes what Twilio would send; ``Wire`` records what we send back;
``CallRig`` runs ``call.serializer → Probe → call.output → Probe`` in a real PipelineWorker
with a ManualClock that the test advances; ``TwilioPlayback`` echoes marks as Twilio would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pipecat.frames.frames import (
    Frame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from voiceagent.clock import ManualClock
from voiceagent.transports.twilio.call import TwilioCall
from voiceagent.transports.twilio.codec import pcm16_to_ulaw
from voiceagent.transports.twilio.line_format import MULAW_8K, LineFormat


def tone_pcm(ms: int, rate: int, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    """A sine tone, int16 mono PCM."""
    n = rate * ms // 1000
    t = np.arange(n) / rate
    return (np.sin(2 * math.pi * freq * t) * amplitude).astype(np.int16).tobytes()


def tts_tone(text: str, n: int, ms: int, rate: int) -> bytes:
    """A TTS segment's audio: a 220 Hz tone."""
    return tone_pcm(ms, rate, freq=220)


def speech(
    segments: list[tuple[str, int]],
    *,
    rate: int = 24000,
    chunk_ms: int = 40,
    started: bool = True,
    stopped: bool = True,
    sound: Callable[[str, int, int, int], bytes] = tts_tone,
) -> list:
    """The frames a pipecat TTS pushes: started, each segment's audio then its text, stopped.

    ``segments``: (text, milliseconds of audio); ``sound(text, index, ms, rate)`` makes it.
    """
    frames: list = [TTSStartedFrame()] if started else []
    for n, (text, ms) in enumerate(segments):
        pcm = sound(text, n, ms, rate)
        step = rate * chunk_ms // 1000 * 2
        frames += [TTSAudioRawFrame(pcm[i : i + step], rate, 1) for i in range(0, len(pcm), step)]
        frames.append(TTSTextFrame(text, "sentence"))
    if stopped:
        frames.append(TTSStoppedFrame())
    return frames


def tone_ulaw(ms: int, freq: float = 440.0) -> bytes:
    """A sine tone as Twilio would send it: 8 kHz μ-law."""
    return pcm16_to_ulaw(tone_pcm(ms, 8000, freq))


class TwilioScript:
    """Builds the messages Twilio sends, with real sequence numbers, chunks and timestamps."""

    def __init__(self, stream_sid: str = "MZ0001", call_sid: str = "CA0001") -> None:
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = "AC0001"
        self.seq = 0
        self.chunk = 0

    def _next(self) -> str:
        self.seq += 1
        return str(self.seq)

    def connected(self) -> str:
        return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, media_format: dict[str, Any] | None = None, **params: str) -> str:
        fmt = media_format or {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        return json.dumps(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": fmt,
                    "customParameters": params,
                },
            }
        )

    def media(
        self, ulaw: bytes, *, stream_sid: str | None = None, timestamp: bool | int = True
    ) -> str:
        """A media message; ``timestamp``: Twilio's (True), none (False) or this many ms."""
        self.chunk += 1
        media: dict[str, Any] = {"track": "inbound", "chunk": str(self.chunk)}
        if timestamp is not False:
            ms = 20 * (self.chunk - 1) if timestamp is True else timestamp
            media["timestamp"] = str(ms)
        media["payload"] = base64.b64encode(ulaw).decode()
        return json.dumps(
            {
                "event": "media",
                "sequenceNumber": self._next(),
                "streamSid": stream_sid or self.stream_sid,
                "media": media,
            }
        )

    def dtmf(self, digit: str) -> str:
        return json.dumps(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str) -> str:
        return json.dumps(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> str:
        return json.dumps(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": "AC0001", "callSid": self.call_sid},
            }
        )


class Wire:
    """The server → Twilio direction of the socket, recorded with the (manual) send time."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.clock = clock
        self.sent: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.raw: list[str] = []
        self.fail = False

    async def send(self, text: str) -> None:
        if self.fail:
            raise ConnectionResetError("socket closed")
        self.raw.append(text)
        self.sent.append(json.loads(text))
        self.times.append(self.clock.now() if self.clock else 0.0)

    def events(self) -> list[str]:
        return [m["event"] for m in self.sent]

    def marks(self) -> list[str]:
        return [m["mark"]["name"] for m in self.sent if m["event"] == "mark"]

    def media_count(self) -> int:
        return sum(1 for m in self.sent if m["event"] == "media")

    def outstanding_marks(self) -> list[str]:
        """Marks sent after the last clear (what Twilio would still echo)."""
        names: list[str] = []
        for m in self.sent:
            if m["event"] == "clear":
                names = []
            elif m["event"] == "mark":
                names.append(m["mark"]["name"])
        return names


class TwilioPlayback:
    """Twilio's side of playback: plays media in order at real time, echoes marks when reached.

    ``due(now)`` lists the marks whose preceding audio has finished playing by ``now`` and
    that were not echoed yet; a ``clear`` makes every mark still waiting due at once (Twilio
    echoes them all). A test may echo them itself first.
    """

    def __init__(self, wire: Wire, line_format: LineFormat = MULAW_8K) -> None:
        self.wire = wire
        self.line_format = line_format
        self.echoed: set[str] = set()

    def due(self, now: float) -> list[str]:
        play_end = float("-inf")
        waiting: list[tuple[str, float]] = []  # (mark, when its audio has played)
        for message, at in zip(self.wire.sent, self.wire.times, strict=True):
            event = message["event"]
            if event == "clear":
                waiting = [(name, min(due, at)) for name, due in waiting]
                play_end = at
            elif event == "media":
                play_end = max(play_end, at) + self.seconds(message)
            elif event == "mark":
                waiting.append((message["mark"]["name"], play_end))
        return [name for name, due in waiting if name not in self.echoed and due <= now + 1e-9]

    def seconds(self, message: dict[str, Any]) -> float:
        """How long a media message plays."""
        return len(base64.b64decode(message["media"]["payload"])) / self.line_format.bytes_per_s

    def plays(self) -> list[tuple[bytes, float, float]]:
        """Each media payload sent: when Twilio starts playing it, and how long of it plays.

        A ``clear`` cuts what had not played by then (a frame playing at the clear is cut
        inside); what is sent later plays after it.
        """
        play_end = float("-inf")
        out: list[list[Any]] = []
        for message, at in zip(self.wire.sent, self.wire.times, strict=True):
            if message["event"] == "clear":
                for entry in out:
                    entry[2] = min(entry[2], max(0.0, at - entry[1]))
                play_end = at
            elif message["event"] == "media":
                seconds = self.seconds(message)
                start = max(play_end, at)
                play_end = start + seconds
                out.append([base64.b64decode(message["media"]["payload"]), start, seconds])
        return [(payload, start, seconds) for payload, start, seconds in out]


class Probe(FrameProcessor):
    """Records every frame passing between the serializer and the output, both ways."""

    def __init__(self) -> None:
        super().__init__()
        self.down: list[Frame] = []
        self.up: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if not isinstance(frame, StartFrame):
                self.down.append(frame)
        else:
            self.up.append(frame)
        await self.push_frame(frame, direction)

    def downstream(self, cls: type) -> list[Any]:
        return [f for f in self.down if isinstance(f, cls)]

    def upstream(self, cls: type) -> list[Any]:
        return [f for f in self.up if isinstance(f, cls)]


class CallRig:
    """A TwilioCall inside a running pipeline, driven by a ManualClock."""

    def __init__(self, **call_kwargs: Any) -> None:
        self.clock = ManualClock()
        self.wire = Wire(self.clock)
        self.twilio = TwilioScript()
        self.playback = TwilioPlayback(self.wire, call_kwargs.get("line_format", MULAW_8K))
        self.echo_marks = True
        self.errors: list[str] = []
        self.call = TwilioCall(
            self.wire.send, clock=self.clock, on_protocol_error=self.errors.append, **call_kwargs
        )
        self.probe = Probe()
        self.tail = Probe()  # sees what the output pushes downstream (into the pipeline sink)
        self.pipeline = Pipeline([self.call.serializer, self.probe, self.call.output, self.tail])
        self.worker = PipelineWorker(self.pipeline, cancel_on_idle_timeout=False)
        self._run: asyncio.Task | None = None

    async def start(self) -> None:
        started = asyncio.Event()

        @self.worker.event_handler("on_pipeline_started")
        async def _started(worker: Any, frame: Frame) -> None:
            started.set()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        self._run = asyncio.create_task(runner.run())
        await asyncio.wait_for(started.wait(), timeout=5)

    async def settle(self, rounds: int = 30) -> None:
        """Let every task run until the pipeline is quiet (no time passes on the clock)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float, step: float = 0.01) -> None:
        """Let ``seconds`` of call time pass, in small steps; Twilio echoes marks as they play."""
        steps = round(seconds / step)
        for _ in range(steps):
            self.clock.advance(step)
            await self.settle(5)
            if self.echo_marks:
                await self.echo(*self.playback.due(self.clock.now()))
        await self.settle()

    async def echo(self, *names: str) -> None:
        """Twilio echoes these marks now."""
        for name in names:
            self.playback.echoed.add(name)
            await self.call.feed_text(self.twilio.mark(name))
        if names:
            await self.settle()

    async def feed(self, *messages: str) -> None:
        for message in messages:
            await self.call.feed_text(message)
        await self.settle()

    async def queue(self, *frames: Frame) -> None:
        for frame in frames:
            await self.worker.queue_frame(frame)
        await self.settle()

    async def finished(self, timeout: float = 5.0) -> None:
        """Wait for the worker to end by itself (bounded)."""
        assert self._run is not None
        await asyncio.wait_for(asyncio.shield(self._run), timeout=timeout)

    async def shutdown(self) -> None:
        if self._run is not None and not self._run.done():
            await self.worker.cancel()
            try:
                await asyncio.wait_for(self._run, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                self._run.cancel()


@pytest.fixture
async def rig():
    """A started CallRig, shut down after the test."""
    r = CallRig()
    await r.start()
    try:
        yield r
    finally:
        await r.shutdown()


@pytest.fixture
async def live(rig: CallRig) -> CallRig:
    """A rig whose call has started (Twilio sent ``start``)."""
    await rig.feed(rig.twilio.connected(), rig.twilio.start())
    return rig
