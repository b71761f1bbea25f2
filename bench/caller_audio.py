"""CPU per caller media message through the stages that use it, many calls in one process.

    .venv/bin/python bench/caller_audio.py [--calls 20] [--seconds 20] [--vad pipecat]

Each call is the server's inbound chain — ``TwilioSerializer → CallerTap (recorded to a
temporary archive) → the voice stage (Silero VAD + sound onset) → a sink standing in for the
STT`` — in a live pipecat pipeline, fed Twilio media messages at Twilio's pace (50 a second
per call by a task of its own, the calls' 20 ms out of phase, as the server's socket readers):
a human prompt (Asterisk's ``agent-pass``, μ-law) then as long a silence, over and
over, calls staggered. The figure is the process's CPU time (``time.process_time``, every
thread: the VAD's and the storage thread's too) per media message over the run, the idle
pipelines' own cost included (other load on the machine moves it by ±10 %: compare runs
made one after the other, alternating). ``--vad
pipecat`` puts pipecat's own ``VADProcessor`` with its ``SileroVADAnalyzer`` (an ONNX session
per call, each 20 ms frame handed to a thread) in the voice stage's place, for comparison;
``--batch-wait-ms`` sets how long a Silero window waits for other calls' (0: the loop's pass).
Also printed: the parts of one frame's voice work, timed alone on the same audio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from loguru import logger  # noqa: E402
from pipecat.audio.vad.silero import SileroVADAnalyzer  # noqa: E402
from pipecat.audio.vad.vad_analyzer import VADParams  # noqa: E402
from pipecat.frames.frames import EndFrame, Frame, InputAudioRawFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.audio.vad_processor import VADProcessor  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from voiceagent.processors.caller_voice import (  # noqa: E402
    CallerVoiceProcessor,
    SharedSileroVAD,
    SoundOnset,
)
from voiceagent.processors.recorder import recorder_taps  # noqa: E402
from voiceagent.processors.silero import shared_batch  # noqa: E402
from voiceagent.settings import StorageSettings  # noqa: E402
from voiceagent.storage import CallArchive  # noqa: E402
from voiceagent.transports.twilio.call import TwilioCall  # noqa: E402
from voiceagent.transports.twilio.codec import StreamResampler, pcm16_to_ulaw  # noqa: E402
from voiceagent.turns.options import VoiceActivity  # noqa: E402

FRAME_S = 0.02
CLIP = Path("/usr/share/asterisk/sounds/en/agent-pass.wav")


def line_audio() -> list[str]:
    """The caller's line as base64 μ-law 20 ms payloads: the prompt, then as long a silence."""
    import base64

    if CLIP.exists():
        with wave.open(str(CLIP)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    else:  # a 1.5 s tone burst stands in (the VAD then hears no speech)
        t = np.arange(12000) / 8000
        pcm = (3000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    pcm = np.concatenate([pcm, np.zeros(pcm.size, np.int16)])
    pcm = pcm[: pcm.size // 160 * 160]
    ulaw = pcm16_to_ulaw(pcm.astype("<i2").tobytes())
    return [base64.b64encode(ulaw[i : i + 160]).decode() for i in range(0, len(ulaw), 160)]


class Sink(FrameProcessor):
    """Stands in for the STT: consumes caller audio, forwards everything else."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not (direction is FrameDirection.DOWNSTREAM and isinstance(frame, InputAudioRawFrame)):
            await self.push_frame(frame, direction)


def voice_stage(kind: str) -> FrameProcessor:
    """The voice stage under test."""
    if kind == "pipecat":
        o = VoiceActivity()
        params = VADParams(
            confidence=o.confidence,
            start_secs=o.start_s,
            stop_secs=o.stop_s,
            min_volume=o.min_volume,
        )
        return VADProcessor(vad_analyzer=SileroVADAnalyzer(params=params))
    return CallerVoiceProcessor()


class Leg:
    """One call: the inbound chain in a running pipeline."""

    def __init__(self, n: int, archive: CallArchive, vad: str) -> None:
        self.call = TwilioCall(self._send, max_messages_per_s=10_000, burst=10_000)
        recording = archive.recording()
        tap_in, tap_out = recorder_taps(recording, self.call.output)
        chain = [self.call.serializer, tap_in, voice_stage(vad), Sink(), tap_out, self.call.output]
        self.worker = PipelineWorker(
            Pipeline(chain),
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
        pass

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


async def measure(legs: list[Leg], seconds: float, payloads: list[str]) -> float:
    """CPU seconds per inbound media message, at Twilio's pace."""
    loop = asyncio.get_running_loop()
    frames = round(seconds / FRAME_S)
    stagger = max(1, len(payloads) // max(1, len(legs)))
    messages = [  # made before the clock starts: Twilio's JSON is not ours to pay for
        [
            leg.message(
                "media",
                media={
                    "track": "inbound",
                    "chunk": str(chunk + 1),
                    "timestamp": str(chunk * 20),
                    "payload": payloads[(chunk + n * stagger) % len(payloads)],
                },
            )
            for n, leg in enumerate(legs)
        ]
        for chunk in range(frames)
    ]
    t0 = loop.time() + 0.1

    async def reader(n: int, leg: Leg) -> None:  # one per call, as the server's socket readers
        phase = FRAME_S * n / len(legs)  # the calls out of phase
        for chunk, texts in enumerate(messages):
            due = t0 + chunk * FRAME_S + phase
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            await leg.call.feed_text(texts[n])

    cpu0 = time.process_time()
    await asyncio.gather(*(reader(n, leg) for n, leg in enumerate(legs)))
    await asyncio.sleep(0.2)  # the last frames through the chain
    return (time.process_time() - cpu0) / (frames * len(legs))


def parts(payloads: list[str]) -> dict[str, float]:
    """CPU µs per 20 ms frame of each part of the voice work, alone, on the same audio."""
    import base64

    from voiceagent.transports.twilio.codec import ulaw_to_pcm16

    resampler = StreamResampler(8000, 16000, quality="QQ")
    frames = [resampler.resample(ulaw_to_pcm16(base64.b64decode(p))) for p in payloads] * 4
    out: dict[str, float] = {}

    def timed(name: str, fn) -> None:
        cpu0 = time.process_time()
        for pcm in frames:
            fn(pcm)
        out[name] = (time.process_time() - cpu0) / len(frames) * 1e6

    onset = SoundOnset()
    timed("sound onset (per frame)", onset.update)
    vad = SharedSileroVAD(params=VADParams())
    vad.set_sample_rate(16000)
    timed("VAD, whole analyzer inline (per frame)", vad._run_analyzer)
    window = vad._vad_frames_num_bytes
    pcm_all = b"".join(frames)
    windows = [pcm_all[i : i + window] for i in range(0, len(pcm_all) - window, window)]
    for name, fn in (
        ("of which the Silero model (per frame)", vad.voice_confidence),
        ("of which the volume, pipecat's loudness (per frame)", vad._get_smoothed_volume),
    ):
        cpu0 = time.process_time()
        for w in windows:  # 32 ms windows: their cost spread over the 20 ms frames
            fn(w)
        out[name] = (time.process_time() - cpu0) / len(frames) * 1e6
    return out


async def run(args: argparse.Namespace) -> None:
    payloads = line_audio()
    batch = shared_batch()
    if args.batch_wait_ms is not None:
        batch.wait_s = args.batch_wait_ms / 1000.0
    with tempfile.TemporaryDirectory(prefix="caller-audio-") as folder:
        archive = CallArchive(StorageSettings(dir=Path(folder)))
        legs = [Leg(n, archive, args.vad) for n in range(args.calls)]
        for leg in legs:
            await leg.start()
        per_message = await measure(legs, args.seconds, payloads)
        for leg in legs:
            await leg.stop()
        await archive.close()
    print(
        f"instrument: bench/caller_audio.py, {args.calls} calls in one process, "
        f"{args.seconds:.0f} s, voice stage {args.vad!r}, time.process_time (all threads)"
    )
    print(
        "serializer → CallerTap → voice → sink: "
        f"{per_message * 1e6:.1f} µs CPU per caller media message"
    )
    if batch.runs:
        print(
            f"Silero batches (wait {1000 * batch.wait_s:g} ms): {batch.windows / batch.runs:.1f} "
            "windows per run"
        )
    for name, us in parts(payloads).items():
        print(f"  {name}: {us:.1f} µs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--vad", choices=("ours", "pipecat"), default="ours")
    parser.add_argument("--batch-wait-ms", type=float, help="Silero batch wait (default: ours)")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
