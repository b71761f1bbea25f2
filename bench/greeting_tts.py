"""The agent's first words with the local Piper TTS: the greeting's request to its first audio.

    .venv/bin/python bench/greeting_tts.py [--runs 5] [--busy 0]

Each run builds a fresh ``LocalPiperTTSService`` on the process's loaded voice (as each call
does) in a live pipecat pipeline and asks it for the outbound greeting (``TTSSpeakFrame``):

- ``synthesized``: Piper synthesizes it (the voice was warmed up with "Hello." when it loaded:
  how every call's greeting was made before the phrases were prepared);
- ``prepared``: the greetings were synthesized while the process started
  (``PreparedPhrases``, as ``AgentResources`` now does) and are played from memory.

The first ``synthesized`` run is the first greeting of a fresh process. ``--busy N`` runs N
busy-looping processes meanwhile (a loaded machine). Instrument: ``time.monotonic`` in this
process, from queuing the frame to the first ``TTSAudioRawFrame`` leaving the service.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipecat.frames.frames import EndFrame, Frame, TTSAudioRawFrame, TTSSpeakFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from voiceagent.services.local.piper_phrases import PreparedPhrases  # noqa: E402
from voiceagent.services.local.piper_tts import (  # noqa: E402
    LocalPiperTTSService,
    load_piper_voice,
    next_sentence,
)
from voiceagent.services.local.weights import resolve_piper_voice  # noqa: E402
from voiceagent.settings import PIPELINE_SAMPLE_RATE, Settings  # noqa: E402


class FirstAudio(FrameProcessor):
    """Notes when the first audio frame comes out of the TTS."""

    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None
        self.heard = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame) and self.at is None:
            self.at = time.monotonic()
            self.heard.set()
        await self.push_frame(frame, direction)


async def first_audio_s(tts: LocalPiperTTSService, text: str) -> float:
    sink = FirstAudio()
    worker = PipelineWorker(
        Pipeline([tts, sink]),
        params=PipelineParams(
            audio_in_sample_rate=PIPELINE_SAMPLE_RATE, audio_out_sample_rate=PIPELINE_SAMPLE_RATE
        ),
        cancel_on_idle_timeout=False,
        enable_rtvi=False,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker, _frame):
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(started.wait(), 30)
    asked = time.monotonic()
    await worker.queue_frame(TTSSpeakFrame(text))
    await asyncio.wait_for(sink.heard.wait(), 60)
    await worker.queue_frame(EndFrame())
    await asyncio.wait_for(task, 30)
    assert sink.at is not None
    return sink.at - asked


def _spin() -> None:
    while True:
        pass


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="busy-looping processes meanwhile")
    args = parser.parse_args()
    settings = Settings()
    text = settings.telephony.outbound_greeting
    model, config = resolve_piper_voice(settings.local)
    began = time.monotonic()
    voice = await asyncio.wrap_future(load_piper_voice(model, config))
    print(f"voice loaded (with its 'Hello.' warm-up) in {time.monotonic() - began:.2f} s")
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for hog in hogs:
        hog.start()
    try:
        times: dict[str, list[float]] = {"synthesized": [], "prepared": []}
        times["synthesized"].append(
            await first_audio_s(
                LocalPiperTTSService(model_path=model, config_path=config, voice=voice), text
            )
        )
        phrases = PreparedPhrases(voice)
        began = time.monotonic()
        await asyncio.to_thread(phrases.prepare, [text], next_sentence)
        print(f"greeting prepared in {time.monotonic() - began:.2f} s (at start, before any call)")
        for _ in range(args.runs):
            plain = LocalPiperTTSService(model_path=model, config_path=config, voice=voice)
            times["synthesized"].append(await first_audio_s(plain, text))
            kept = LocalPiperTTSService(
                model_path=model, config_path=config, voice=voice, phrases=phrases
            )
            times["prepared"].append(await first_audio_s(kept, text))
    finally:
        for hog in hogs:
            hog.terminate()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"greeting {text!r}; {args.busy} busy process(es); load average {load}")
    print(f"first greeting of the process (synthesized): {times['synthesized'][0] * 1000:.0f} ms")
    for name, values in times.items():
        values = values[1:] if name == "synthesized" else values
        ms = sorted(v * 1000 for v in values)
        print(
            f"{name:>11}: request → first audio min {ms[0]:.0f} / median "
            f"{statistics.median(ms):.0f} / max {ms[-1]:.0f} ms over {len(ms)} calls"
        )


if __name__ == "__main__":
    asyncio.run(main())
