"""CPU per 20 ms frame of the Twilio transport, in and out, with many calls in one process.

    .venv/bin/python bench/twilio_frames.py [--calls 50] [--seconds 10]

In: each call's ``TwilioSerializer`` is fed Twilio media messages (JSON, base64 μ-law, 20 ms)
at Twilio's pace, 50 per second per call, through a live pipecat pipeline ending in a sink;
the figure is the process's CPU time (``time.process_time``) per message over the run, the
idle pipelines' own cost included. Out: each call's ``TwilioOutput`` plays TTS audio for the
whole run, paced in real time to a socket that only counts (no network); the figure is CPU
time per media message sent. Both include pipecat's frame hops around the transport (the
serializer's push to the next stage, the output's processing of each TTS chunk).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger  # noqa: E402
from pipecat.frames.frames import (  # noqa: E402
    EndFrame,
    Frame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from voiceagent.transports.twilio.call import TwilioCall  # noqa: E402

FRAME_S = 0.02
PAYLOAD = base64.b64encode(bytes(range(160))).decode()


class Sink(FrameProcessor):
    """Drops caller audio (the stages that would use it are not measured here)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.UPSTREAM or not frame.__class__.__name__.startswith("Input"):
            await self.push_frame(frame, direction)


class Leg:
    """One call: a TwilioCall in a running pipeline, a counting socket."""

    def __init__(self, n: int) -> None:
        self.sent = 0
        self.call = TwilioCall(self._send, max_messages_per_s=10_000, burst=10_000)
        self.sink = Sink()
        self.worker = PipelineWorker(
            Pipeline([self.call.serializer, self.sink, self.call.output]),
            params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=16000),
            cancel_on_idle_timeout=False,
            idle_timeout_secs=None,
            enable_rtvi=False,
            enable_turn_tracking=False,
        )
        self.runner = WorkerRunner(handle_sigint=False)
        self.sid = f"MZ{n:032d}"
        self.seq = 0

    async def _send(self, text: str) -> None:
        self.sent += text.startswith('{"event":"media"')

    def message(self, event: str, **body) -> str:
        self.seq += 1
        return json.dumps(
            {"event": event, "sequenceNumber": str(self.seq), "streamSid": self.sid, **body}
        )

    async def start(self) -> None:
        started = asyncio.Event()

        @self.worker.event_handler("on_pipeline_started")
        async def _started(_worker, _frame) -> None:
            started.set()

        await self.runner.add_workers(self.worker)
        self.task = asyncio.create_task(self.runner.run())
        await started.wait()
        start = {
            "streamSid": self.sid,
            "callSid": "CA" + self.sid[2:],
            "accountSid": "AC0",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self.call.feed_text(self.message("start", start=start))

    async def stop(self) -> None:
        await self.worker.queue_frame(EndFrame())
        await asyncio.wait_for(self.task, 30)


async def measure_in(legs: list[Leg], seconds: float) -> float:
    """CPU seconds per inbound media message, at Twilio's pace."""
    loop = asyncio.get_running_loop()
    frames = round(seconds / FRAME_S)
    messages = [  # made before the clock starts: Twilio's JSON is not ours to pay for
        [
            leg.message(
                "media",
                media={
                    "track": "inbound",
                    "chunk": str(chunk + 1),
                    "timestamp": str(chunk * 20),
                    "payload": PAYLOAD,
                },
            )
            for leg in legs
        ]
        for chunk in range(frames)
    ]
    t0, cpu0 = loop.time(), time.process_time()
    for chunk, texts in enumerate(messages):
        await asyncio.sleep(max(0.0, t0 + chunk * FRAME_S - loop.time()))
        for leg, text in zip(legs, texts, strict=True):
            await leg.call.feed_text(text)
    return (time.process_time() - cpu0) / (frames * len(legs))


async def measure_out(legs: list[Leg], seconds: float) -> float:
    """CPU seconds per outbound media message, playing TTS audio in real time."""
    chunk = bytes(3200)  # 100 ms of 16 kHz PCM16, as a TTS streams it
    for leg in legs:
        await leg.worker.queue_frame(TTSStartedFrame(context_id="a"))
        for _ in range(round(seconds / 0.1)):
            await leg.worker.queue_frame(TTSAudioRawFrame(chunk, 16000, 1, context_id="a"))
        await leg.worker.queue_frame(TTSTextFrame("words", aggregated_by="sentence"))
        await leg.worker.queue_frame(TTSStoppedFrame(context_id="a"))
    before = sum(leg.sent for leg in legs)
    cpu0 = time.process_time()
    await asyncio.sleep(seconds + 0.5)
    sent = sum(leg.sent for leg in legs) - before
    return (time.process_time() - cpu0) / max(1, sent)


async def run(args: argparse.Namespace) -> None:
    legs = [Leg(n) for n in range(args.calls)]
    for leg in legs:
        await leg.start()
    per_in = await measure_in(legs, args.seconds)
    per_out = await measure_out(legs, args.seconds)
    for leg in legs:
        await leg.stop()
    print(
        f"instrument: bench/twilio_frames.py, {args.calls} calls in one process, "
        f"{args.seconds:.0f} s each way, time.process_time"
    )
    print(f"in  (Twilio media message → frame to the next stage): {per_in * 1e6:.1f} µs CPU each")
    print(f"out (TTS audio → paced media message to Twilio):      {per_out * 1e6:.1f} µs CPU each")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
