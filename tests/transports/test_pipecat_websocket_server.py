"""TwilioFrameSerializer on pipecat's ``SingleClientWebsocketServerTransport``: the caller
emulator (Twilio's protocol, playback and mark echoes) calls; the agent greets in two clauses;
each clause is marked, and what the caller heard comes back as one ``AgentHeardFrame``.
"""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest
from pipecat.frames.frames import (
    Frame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.websocket.server import (
    SingleClientWebsocketServerParams,
    SingleClientWebsocketServerTransport,
)
from pipecat.workers.runner import WorkerRunner

from voiceagent.emulator.caller import CallerEmulator
from voiceagent.frames import AgentHeardFrame, CallStartedFrame
from voiceagent.transports.twilio.frame_serializer import TwilioFrameSerializer
from voiceagent.transports.twilio.marks import TwilioMarks

pytestmark = pytest.mark.slow

RATE = 16000
CLAUSES = ["Hello, this is Harbor Bikes.", "How can I help?"]


class ToneGreeter(FrameProcessor):
    """Speaks each clause as 0.4 s of tone when the call starts; records heard reports."""

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[AgentHeardFrame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, AgentHeardFrame):
            self.heard.append(frame)
        elif isinstance(frame, CallStartedFrame):
            await self.push_frame(TTSStartedFrame())
            t = np.arange(RATE * 4 // 10) / RATE
            pcm = (6000 * np.sin(2 * np.pi * 330 * t)).astype("<i2").tobytes()
            for clause in CLAUSES:
                for start in range(0, len(pcm), 640):
                    await self.push_frame(TTSAudioRawFrame(pcm[start : start + 640], RATE, 1))
                await self.push_frame(TTSTextFrame(clause, "sentence"))
            await self.push_frame(TTSStoppedFrame())


async def test_pipecats_websocket_server_transport_carries_marks_and_the_heard_ledger():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    transport = SingleClientWebsocketServerTransport(
        SingleClientWebsocketServerParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            serializer=TwilioFrameSerializer(),
            allowed_origins=[],
        ),
        host="127.0.0.1",
        port=port,
    )
    greeter = ToneGreeter()
    worker = PipelineWorker(
        Pipeline([transport.input(), greeter, TwilioMarks(), transport.output()]),
        # The line's rate out: pipecat's output resamples ahead of its send buffer, and the
        # serializer sends its chunks as they are.
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=8000),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )
    ready = asyncio.Event()

    @transport.event_handler("on_websocket_ready")
    async def _ready(_transport) -> None:
        ready.set()

    @transport.event_handler("on_client_disconnected")
    async def _gone(_transport, _socket) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(ready.wait(), 10.0)
        caller = CallerEmulator(f"ws://127.0.0.1:{port}")
        report = await asyncio.wait_for(caller.run([], lead_in_s=0.5, tail_s=1.5), 30.0)
    finally:
        await asyncio.wait_for(run, 15.0)
    assert report.marks_received == 3 and report.marks_echoed == 3  # a clause each, the end
    assert report.clears == 0
    assert report.media_received == 20  # the 0.8 s greeting in pipecat's 40 ms chunks
    [heard] = greeter.heard
    assert heard.text == heard.full_text == " ".join(CLAUSES)
    assert heard.interrupted is False
