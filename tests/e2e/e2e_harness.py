"""Loopback end-to-end harness: the real server on 127.0.0.1, callers, test-only agents, audio.

Everything here is test-only: an "echo agent" pipeline that answers each caller utterance with
a tone (so the server, transport and emulator are exercised without model weights), a raw
Twilio leg that misbehaves on purpose, recorders for the emulator's events and the bot's
transcript callback, and a receptionist factory that keeps each call's ``CallParts``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.demo import trim_silence
from voiceagent.emulator.audio import load_wav_pcm8k, ulaw_encode
from voiceagent.frames import CallStartedFrame
from voiceagent.settings import PIPELINE_SAMPLE_RATE, Settings

PHONE_RATE = 8000
SPEECH_RMS = 300.0  # heard audio louder than this (PCM16 RMS) is agent sound, not silence
SERVER_START_S = 15.0
ASTERISK_PROMPT = Path("/usr/share/asterisk/sounds/en/vm-goodbye.wav")


# ----- the server -------------------------------------------------------------------------------


def loopback_settings(**sections: Any) -> Settings:
    """Settings for a loopback server (any free port, no signatures), plus section overrides."""
    server = {"host": "127.0.0.1", "port": 0, "twilio_auth_token": None, "shutdown_grace_s": 2.0}
    server.update(sections.pop("server", {}))
    return Settings(server=server, **sections)


@dataclass
class LiveServer:
    """A running ``run_server`` on 127.0.0.1."""

    port: int

    @property
    def media_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/media"

    async def metrics(self) -> dict[str, float]:
        """Scrape ``/metrics`` over HTTP: ``{'name{labels}': value}``."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}/metrics") as response,
        ):
            assert response.status == 200
            text = await response.text()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples


@asynccontextmanager
async def serving(settings: Settings, factory: Any) -> AsyncIterator[LiveServer]:
    """Run the real server (``run_server``) in this loop; cancel and drain it afterwards."""
    from urllib.parse import urlsplit

    from voiceagent.server.in_process import serve_in_process

    async with serve_in_process(settings, factory, start_timeout_s=SERVER_START_S) as url:
        port = urlsplit(url).port
        assert port is not None
        yield LiveServer(port)


# ----- audio --------------------------------------------------------------------------------------


def tone(seconds: float, hz: float, rate: int, amplitude: float = 9000.0) -> bytes:
    """A sine tone as PCM16 mono."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes()


def rms(pcm16: bytes) -> float:
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def window(pcm8k: bytes, start_s: float, end_s: float) -> bytes:
    """The stretch ``[start_s, end_s)`` of 8 kHz PCM16."""
    return pcm8k[round(start_s * PHONE_RATE) * 2 : round(end_s * PHONE_RATE) * 2]


def band_power(pcm8k: bytes, hz: float, width_hz: float = 30.0) -> float:
    """Spectral power of 8 kHz PCM16 within ``hz ± width_hz``."""
    samples = np.frombuffer(pcm8k, dtype="<i2").astype(np.float64)
    if not samples.size:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1.0 / PHONE_RATE)
    return float(spectrum[(freqs > hz - width_hz) & (freqs < hz + width_hz)].sum())


def caller_line_pcm8k(text: str, folder: Path) -> bytes:
    """The caller saying ``text`` (espeak-ng), or an Asterisk prompt; skip the test without both."""
    espeak = shutil.which("espeak-ng")
    if espeak is not None:
        path = folder / f"caller-{uuid.uuid4().hex[:8]}.wav"
        subprocess.run([espeak, "-s", "150", "-w", str(path), text], check=True, timeout=30)
        return trim_silence(load_wav_pcm8k(path))
    if ASTERISK_PROMPT.exists():
        return trim_silence(load_wav_pcm8k(ASTERISK_PROMPT))
    pytest.skip("no caller audio: neither espeak-ng nor the Asterisk prompts are installed")


# ----- the echo agent (test-only pipeline) --------------------------------------------------------


class EchoToneAgent(FrameProcessor):
    """After each caller utterance (VAD stop) the agent "speaks" a tone as a real TTS turn.

    The reply is ``TTSStartedFrame``, audio and a ``TTSTextFrame`` per segment, then
    ``TTSStoppedFrame``, so TwilioOutput paces it, marks each segment and reports what was
    heard. The tone's pitch comes from the call's ``tone_hz`` custom parameter (440 Hz by
    default), so a caller can tell its own agent from another call's.
    """

    def __init__(self, *, segments: int = 2, segment_s: float = 0.4) -> None:
        super().__init__()
        self.tone_hz = 440.0
        self.segments = segments
        self.segment_s = segment_s
        self.replies = 0
        self.stream_sid = ""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, CallStartedFrame):
            self.stream_sid = frame.stream_sid
            self.tone_hz = float(frame.custom_parameters.get("tone_hz", self.tone_hz))
        elif (
            isinstance(frame, VADUserStoppedSpeakingFrame)
            and direction is FrameDirection.DOWNSTREAM
        ):
            await self._reply()

    async def _reply(self) -> None:
        self.replies += 1
        context = f"echo-{self.replies}"
        await self.push_frame(TTSStartedFrame(context_id=context))
        audio = tone(self.segment_s, self.tone_hz, PIPELINE_SAMPLE_RATE)
        step = PIPELINE_SAMPLE_RATE // 50 * 2  # 20 ms
        for n in range(self.segments):
            for start in range(0, len(audio), step):
                await self.push_frame(
                    TTSAudioRawFrame(
                        audio=audio[start : start + step],
                        sample_rate=PIPELINE_SAMPLE_RATE,
                        num_channels=1,
                        context_id=context,
                    )
                )
            await self.push_frame(TTSTextFrame(f"echo {self.replies} part {n + 1}.", "sentence"))
        await self.push_frame(TTSStoppedFrame(context_id=context))


@dataclass
class EchoFactory:
    """Pipeline factory: pipecat's Silero VAD, then the echo agent; records every call's agent."""

    agents: list[EchoToneAgent] = field(default_factory=list)

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        agent = EchoToneAgent()
        self.agents.append(agent)
        vad = VADProcessor(
            vad_analyzer=SileroVADAnalyzer(params=VADParams(start_secs=0.15, stop_secs=0.5))
        )
        return [vad, agent]


# ----- observing calls ----------------------------------------------------------------------------


@dataclass
class CallEvents:
    """The emulator's live events (``on_event``), with helpers over agent playback."""

    events: list[tuple[str, dict]] = field(default_factory=list)

    def __call__(self, kind: str, data: dict) -> None:
        self.events.append((kind, dict(data)))

    def of(self, kind: str) -> list[dict]:
        return [data for k, data in self.events if k == kind]

    def utterances(self) -> list[tuple[float, float]]:
        """(start, end) of each agent utterance the caller heard, in stream seconds."""
        starts = [d["t"] for d in self.of("agent_audio_start")]
        ends = [d["t"] for d in self.of("agent_audio_end")]
        return list(zip(starts, ends, strict=False))


@dataclass
class TranscriptLog:
    """Records a ``ReceptionistBot`` transcript callback: (who, text, info)."""

    entries: list[tuple[str, str, dict]] = field(default_factory=list)

    def __call__(self, who: str, text: str, info: dict) -> None:
        self.entries.append((who, text, dict(info)))

    def caller_texts(self) -> list[str]:
        return [text for who, text, _ in self.entries if who == "caller"]

    def agent_turns(self) -> list[tuple[str, dict]]:
        return [(text, info) for who, text, info in self.entries if who == "agent"]


def words(text: str) -> list[str]:
    """Lower-case words without punctuation."""
    return ["".join(c for c in w.lower() if c.isalnum() or c == "'") for w in text.split()]


# ----- a Twilio leg that misbehaves ---------------------------------------------------------------


@dataclass
class MisbehavingLeg:
    """A Media Stream that mixes junk into real caller audio, echoes marks and records replies.

    Junk (each a different protocol error): non-JSON text, a binary frame, an unknown event,
    a message without ``event``, media for another stream and media with a non-base64
    payload.
    """

    url: str
    tone_hz: str = "660"
    stream_sid: str = field(default_factory=lambda: "MZ" + uuid.uuid4().hex)
    call_sid: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)
    junk_sent: dict[str, int] = field(default_factory=dict)
    heard_ulaw: bytearray = field(default_factory=bytearray)
    foreign: int = 0  # messages for another stream
    marks: int = 0
    close_code: int | None = None
    _seq: int = 0

    def _msg(self, event: str, **body: Any) -> str:
        self._seq += 1
        return json.dumps(
            {"event": event, "sequenceNumber": str(self._seq), "streamSid": self.stream_sid, **body}
        )

    async def run(self, speech_pcm8k: bytes, *, lead_s: float = 0.4, tail_s: float = 2.5) -> None:
        """Connect, start, send junk, speak ``speech_pcm8k`` at real-time pace, wait, stop."""
        async with aiohttp.ClientSession() as session, session.ws_connect(self.url) as ws:
            reader = asyncio.create_task(self._read(ws))
            await ws.send_str(
                json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            )
            start = {
                "accountSid": "AC" + "0" * 32,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"tone_hz": self.tone_hz},
            }
            await ws.send_str(self._msg("start", start=start))
            await self._junk(ws)
            silence = bytes(round(lead_s * PHONE_RATE) * 2)
            tail = bytes(round(tail_s * PHONE_RATE) * 2)
            ulaw = ulaw_encode(silence + speech_pcm8k + tail)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for n, offset in enumerate(range(0, len(ulaw) - 159, 160)):
                await asyncio.sleep(max(0.0, t0 + n * 0.02 - loop.time()))
                if ws.closed:
                    break
                payload = base64.b64encode(ulaw[offset : offset + 160]).decode()
                media = {
                    "track": "inbound",
                    "chunk": str(n + 1),
                    "timestamp": str(n * 20),
                    "payload": payload,
                }
                await ws.send_str(self._msg("media", media=media))
            if not ws.closed:
                stop = {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid}
                await ws.send_str(self._msg("stop", stop=stop))
            await asyncio.wait({reader}, timeout=5.0)
            reader.cancel()
            self.close_code = ws.close_code

    async def _junk(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        def count(kind: str) -> None:
            self.junk_sent[kind] = self.junk_sent.get(kind, 0) + 1

        await ws.send_str("{this is not json")
        count("non_json")
        await ws.send_bytes(b"\x00\x01\x02 binary")
        count("binary")
        await ws.send_str(self._msg("teleport", teleport={}))
        count("unknown_event")
        await ws.send_str(json.dumps({"streamSid": self.stream_sid, "hello": 1}))
        count("missing_field")
        other = json.loads(self._msg("media", media={"payload": "/" * 216}))
        other["streamSid"] = "MZ" + "f" * 32
        await ws.send_str(json.dumps(other))
        count("wrong_stream_sid")
        await ws.send_str(self._msg("media", media={"track": "inbound", "payload": "!" * 216}))
        count("bad_base64")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("streamSid") != self.stream_sid:
                self.foreign += 1
                continue
            if data.get("event") == "media":
                self.heard_ulaw += base64.b64decode(data["media"]["payload"])
            elif data.get("event") == "mark":
                self.marks += 1
                await ws.send_str(self._msg("mark", mark={"name": data["mark"]["name"]}))
