"""A phone call with the bundled receptionist: Twilio leg, real transport, real bot, fakes.

``PhoneCall`` runs ``[TwilioCall.serializer, CallerTap, *ReceptionistBot(call), AgentTap,
TwilioCall.output]`` — the server's chain — in a pipecat PipelineWorker. Audio-side stages are
swapped: the caller's words arrive as VAD + transcript frames (no VAD/STT models), and a tone
"TTS" speaks each chunk the SentenceAggregator releases (0.1 s per chunk, with its text), so
TwilioOutput paces, marks and reports what was heard. The turn engine, the LLM (HTTP to
``FakeToolServer``, with pipecat's speculation gate), aggregator and hang-up are the real ones.

Call time is a ManualClock: ``wait`` advances it and, like Twilio, echoes each mark once the
audio before it has played. ``FakeTwilioRest`` is Twilio's REST API on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from pipecat.frames.frames import (
    AggregatedTextFrame,
    Frame,
    InterimTranscriptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from tests.loopback import start_loopback
from tests.twilio_marks import due_marks
from voiceagent.clock import ManualClock
from voiceagent.pipelines.receptionist import ReceptionistBot
from voiceagent.processors.recorder import recorder_taps
from voiceagent.settings import PIPELINE_SAMPLE_RATE, Settings, StorageSettings
from voiceagent.storage import CallArchive, CallDetail, open_store
from voiceagent.transports.twilio.call import TwilioCall

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token"
CALL_SID = "CA" + "2" * 32
STREAM_SID = "MZ" + "3" * 32
SYSTEM = "You are the receptionist of Bright Smile Dental."
CHUNK_S = 0.1  # audio the tone TTS makes per spoken chunk


class ToneTTS(FrameProcessor):
    """Speaks each aggregated chunk as a tone (one TTS turn per LLM reply)."""

    def __init__(self) -> None:
        super().__init__()
        self.spoken: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, LLMFullResponseStartFrame):
                await self.push_frame(frame)
                await self.push_frame(TTSStartedFrame(context_id="reply"))
                return
            if isinstance(frame, AggregatedTextFrame):
                self.spoken.append(frame.text)
                t = np.arange(round(CHUNK_S * PIPELINE_SAMPLE_RATE)) / PIPELINE_SAMPLE_RATE
                pcm = (8000 * np.sin(2 * math.pi * 440.0 * t)).astype("<i2").tobytes()
                step = PIPELINE_SAMPLE_RATE // 50 * 2
                for start in range(0, len(pcm), step):
                    await self.push_frame(
                        TTSAudioRawFrame(pcm[start : start + step], PIPELINE_SAMPLE_RATE, 1)
                    )
                await self.push_frame(TTSTextFrame(frame.text, "sentence"))
                return
            if isinstance(frame, LLMFullResponseEndFrame):
                await self.push_frame(TTSStoppedFrame(context_id="reply"))
        await self.push_frame(frame, direction)


@dataclass
class RestRequest:
    """One request Twilio's REST API received, and what the caller had heard by then."""

    path: str
    form: dict[str, str]
    authorization: str
    marks_echoed: int
    marks_sent: int


@dataclass
class FakeTwilioRest:
    """Twilio's REST API on 127.0.0.1: ``POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json``."""

    status: int = 200
    requests: list[RestRequest] = field(default_factory=list)
    call: PhoneCall | None = None
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeTwilioRest:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}", self._update_call)
        self._runner, self.port = await start_loopback(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _update_call(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        call = self.call
        self.requests.append(
            RestRequest(
                path=request.path,
                form=form,
                authorization=request.headers.get("Authorization", ""),
                marks_echoed=len(call.echoed) if call is not None else -1,
                marks_sent=call.marks_sent() if call is not None else -1,
            )
        )
        if self.status != 200:
            body = {"code": 20404, "message": "The requested resource was not found", "status": 404}
            return web.json_response(body, status=self.status)
        sid = request.match_info["call"].removesuffix(".json")
        return web.json_response({"sid": sid, "status": "completed"})


def receptionist_settings(
    llm_url: str, tmp: Path, rest_url: str | None = None, *, speculate: bool = False
) -> Settings:
    """The bundled bot on an OpenAI-compatible server, tools on, Twilio REST when given.

    Early LLM starts are off unless ``speculate``: a speculative request that asks for a tool
    is withdrawn and asked again at the commit, so a script of replies would depend on timing.
    """
    twilio: dict[str, Any] = {}
    server: dict[str, Any] = {}
    if rest_url is not None:
        twilio = {"account_sid": ACCOUNT_SID, "api_base_url": rest_url, "timeout_s": 2.0}
        server = {"twilio_auth_token": AUTH_TOKEN}
    return Settings(
        llm="openai",
        stt="local",
        tts="local",
        cloud={"openai_base_url": llm_url, "openai_model": "fake"},
        agent={"system_prompt": SYSTEM, "greeting": "", "tools": True, "tools_prompt": ""},
        twilio=twilio,
        server=server,
        turns={
            "watchdog": {"reply_timeout_s": 60.0, "idle_timeout_s": 120.0},
            "speculation": {"enabled": speculate},
        },
        fallback={"stt": [], "llm": [], "tts": []},
        storage=StorageSettings(dir=tmp),
    )


class PhoneCall:
    """``async with PhoneCall(settings) as call:`` — the caller talks, time passes, look."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self.clock = ManualClock()
        self.settings = settings
        self.tts = ToneTTS()
        self.bot = ReceptionistBot(
            settings,
            clock=self.clock,
            overrides={
                "voice": lambda p: None,
                "end_of_turn": lambda p: None,
                "stt": lambda p: None,
                "tts": lambda p: self.tts,
                **overrides,
            },
            on_call_built=self._built,
        )
        self.parts: Any = None
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.echoed: set[str] = set()
        self.call = TwilioCall(self._send, clock=self.clock)
        self.archive = CallArchive(settings.storage)
        self.recording = self.archive.recording(clock=self.clock)
        self.worker: PipelineWorker | None = None
        self.run: asyncio.Task | None = None
        self._seq = 0

    def _built(self, call: Any, parts: Any) -> None:
        self.parts = parts

    async def __aenter__(self) -> PhoneCall:
        processors = await self.bot(self.call, self.settings)
        first, last = recorder_taps(self.recording, self.call.output)
        chain = [self.call.serializer, first, *processors, last, self.call.output]
        self.worker = PipelineWorker(
            Pipeline(chain), cancel_on_idle_timeout=False, enable_rtvi=False
        )
        started = asyncio.Event()

        @self.worker.event_handler("on_pipeline_started")
        async def _started(worker: Any, frame: Any) -> None:
            started.set()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        self.run = asyncio.create_task(runner.run())
        await asyncio.wait_for(started.wait(), 10)
        start = {
            "accountSid": ACCOUNT_SID,
            "streamSid": STREAM_SID,
            "callSid": CALL_SID,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"From": "+15550100", "To": "+15550199"},
        }
        await self.call.feed_text(self._twilio("start", start=start))
        await self.settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.run is not None and not self.run.done():
            await self.call.feed_text(self._twilio("stop", stop={"callSid": CALL_SID}))
            try:
                await asyncio.wait_for(asyncio.shield(self.run), 5)
            except TimeoutError:
                assert self.worker is not None
                await self.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(self.run, 5)
        await self.archive.close()

    # ------------------------------------------------------------------- Twilio

    async def _send(self, text: str) -> None:
        self.sent.append((self.clock.now(), json.loads(text)))

    def _twilio(self, event: str, **body: Any) -> str:
        self._seq += 1
        return json.dumps(
            {"event": event, "sequenceNumber": str(self._seq), "streamSid": STREAM_SID, **body}
        )

    def _due_marks(self) -> list[str]:
        return due_marks(self.sent, self.echoed, self.clock.now())

    def marks_sent(self) -> int:
        return sum(1 for _, m in self.sent if m["event"] == "mark")

    def heard_ulaw(self) -> bytes:
        return b"".join(
            base64.b64decode(m["media"]["payload"]) for _, m in self.sent if m["event"] == "media"
        )

    # ------------------------------------------------------------------- caller

    async def settle(self, rounds: int = 30) -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def wait(self, seconds: float, step: float = 0.01) -> None:
        """Call time passes; Twilio plays sent audio and echoes each mark once it played."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            await self.settle(5)
            for name in self._due_marks():
                self.echoed.add(name)
                await self.call.feed_text(self._twilio("mark", mark={"name": name}))
        await self.settle()

    async def says(self, text: str) -> None:
        """One caller utterance: speech starts, three agreeing partials, speech stops, final."""
        assert self.worker is not None
        await self.worker.queue_frame(VADUserStartedSpeakingFrame(start_secs=0.15))
        for _ in range(3):
            await self.wait(0.1)
            await self.worker.queue_frame(InterimTranscriptionFrame(text, "caller", ""))
            await self.settle()
        await self.worker.queue_frame(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        await self.wait(0.05)
        await self.worker.queue_frame(TranscriptionFrame(text, "caller", "", finalized=True))
        await self.settle()

    async def until(self, predicate, timeout: float = 5.0) -> None:
        """Wait (real time, bounded) until ``predicate()`` holds; call time stands still."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.005)

    async def plays_out(self, predicate, *, limit_s: float = 30.0, timeout: float = 6.0) -> None:
        """Let call time pass (the LLM answers in real time) until ``predicate()`` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for _ in range(round(limit_s / 0.02)):
            if predicate():
                return
            if loop.time() > deadline:
                break
            await self.wait(0.02)
            await asyncio.sleep(0.005)
        raise AssertionError("the call did not get there")

    async def stored(self) -> CallDetail:
        await self.archive.close()
        store = open_store(self.settings.storage, create=False)
        try:
            detail = store.find_call(CALL_SID)
        finally:
            store.close()
        assert detail is not None
        return detail
