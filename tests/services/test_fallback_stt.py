"""STT fallback: a silent or refused primary hands the caller's utterance to the next STT."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from loguru import logger
from pipecat.frames.frames import (
    ErrorFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameProcessor

from voiceagent.clock import ManualClock
from voiceagent.frames import ProviderSwitchedFrame
from voiceagent.processors.fallback_stages import STTFallback
from voiceagent.services.deepgram import create_deepgram_stt
from voiceagent.settings import CloudSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/services: shared fakes
from fakes.fake_deepgram import FakeDeepgramSTT, FakeUtterance  # noqa: E402
from fakes.harness import LivePipeline, until  # noqa: E402

FRAME = bytes(640)  # 20 ms of PCM16 at 16 kHz


def stt_of(fake: FakeDeepgramSTT):
    return create_deepgram_stt(CloudSettings(deepgram_api_key="dg-test-key", deepgram_url=fake.url))


def audio(n: int) -> InputAudioRawFrame:
    return InputAudioRawFrame(audio=bytes([n % 256]) * 640, sample_rate=16000, num_channels=1)


@pytest.fixture
def warnings_logged():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    yield lines
    logger.remove(sink)


async def caller_says(pipe: LivePipeline, *, before: int, during: int, stop: bool = True):
    for n in range(before):
        await pipe.push(audio(n))
    await pipe.push(VADUserStartedSpeakingFrame())
    for n in range(during):
        await pipe.push(audio(before + n))
    if stop:
        await pipe.push(VADUserStoppedSpeakingFrame())


def one_line(lines: list[str], text: str) -> int:
    return sum(text in line for line in lines)


async def test_a_silent_primary_times_out_and_the_next_stt_transcribes_the_utterance(
    warnings_logged,
):
    clock = ManualClock()
    words = FakeUtterance(["Do", "you", "take", "new", "patients?"], interim_words=2)
    async with (
        FakeDeepgramSTT([FakeUtterance(["never"])]) as primary,
        FakeDeepgramSTT([words], interim_after_bytes=6400) as backup,
    ):
        primary.silent = True
        switcher = STTFallback([stt_of(primary), stt_of(backup)], timeout_s=2.5, clock=clock)
        async with LivePipeline(switcher) as pipe:
            await caller_says(pipe, before=10, during=60)
            await until(lambda: len(primary.audio) == 70 * 640, 3.0)
            clock.advance(2.4)
            await asyncio.sleep(0.1)
            assert switcher.stats.switches == 0 and not backup.audio
            clock.advance(0.2)  # 2.6 s after the VAD start, still no transcript
            await pipe.wait_for(lambda: pipe.down_of(TranscriptionFrame), 5.0)
            for n in range(5):  # later caller audio goes to the new STT only (100 ms a message)
                await pipe.push(audio(999 + n))
            await until(lambda: len(backup.audio) == 75 * 640, 2.0)
    assert switcher.stats.switches == 1 and "no transcript 2.5 s" in switcher.stats.reasons[0]
    assert one_line(warnings_logged, "stt fallback") == 1
    # The backup heard the utterance from its pre-roll: the same bytes, in order.
    assert bytes(backup.audio[: 70 * 640]) == bytes(primary.audio)
    assert backup.messages_of("Finalize")  # the VAD stop was handed over too
    assert [f.text for f in pipe.down_of(InterimTranscriptionFrame)] == ["Do you"]
    assert [f.text for f in pipe.down_of(TranscriptionFrame)] == ["Do you take new patients?"]
    # The rest of the pipeline saw the caller's VAD frames once each.
    assert len(pipe.down_of(VADUserStartedSpeakingFrame)) == 1
    assert len(pipe.down_of(VADUserStoppedSpeakingFrame)) == 1
    assert not pipe.down_of(InputAudioRawFrame)  # caller audio stops at the STT
    assert not pipe.up_of(ErrorFrame)


async def test_a_refused_primary_gives_the_call_to_the_next_stt_from_the_start():
    clock = ManualClock()
    async with (
        FakeDeepgramSTT() as primary,
        FakeDeepgramSTT([FakeUtterance(["Hello"])], interim_after_bytes=640) as backup,
    ):
        primary.reject_status = 402
        switcher = STTFallback([stt_of(primary), stt_of(backup)], clock=clock)
        async with LivePipeline(switcher) as pipe:
            await until(lambda: switcher.stats.switches == 1, 5.0)
            await caller_says(pipe, before=0, during=10)
            await pipe.wait_for(lambda: pipe.down_of(TranscriptionFrame), 5.0)
    assert primary.refused == [402] and not primary.audio
    assert len(backup.audio) == 10 * 640
    assert "HTTP 402" in switcher.stats.reasons[0]
    (switched,) = pipe.down_of(ProviderSwitchedFrame)  # for the call's record
    assert (switched.stage, switched.failed, switched.serving) == (
        "stt",
        switcher.services[0].name,
        switcher.services[1].name,
    )
    assert "HTTP 402" in switched.reason
    assert [f.text for f in pipe.down_of(TranscriptionFrame)] == ["Hello"]
    assert not pipe.up_of(ErrorFrame)  # answered for by the switcher


async def test_a_healthy_primary_keeps_the_call():
    clock = ManualClock()
    async with (
        FakeDeepgramSTT([FakeUtterance(["Hi", "there"])], interim_after_bytes=640) as primary,
        FakeDeepgramSTT([FakeUtterance(["wrong"])]) as backup,
    ):
        switcher = STTFallback([stt_of(primary), stt_of(backup)], timeout_s=2.5, clock=clock)
        async with LivePipeline(switcher) as pipe:
            await caller_says(pipe, before=5, during=20)
            await pipe.wait_for(lambda: pipe.down_of(TranscriptionFrame), 5.0)
            clock.advance(10.0)
            await asyncio.sleep(0.1)
    assert switcher.stats.switches == 0 and switcher.active.name == switcher.services[0].name
    assert len(primary.audio) == 25 * 640 and not backup.audio
    assert [f.text for f in pipe.down_of(TranscriptionFrame)] == ["Hi there"]


async def test_with_no_provider_left_the_error_travels_on():
    async with FakeDeepgramSTT() as only, FakeDeepgramSTT() as also_down:
        only.reject_status = 401
        also_down.reject_status = 429
        switcher = STTFallback([stt_of(only), stt_of(also_down)], clock=ManualClock())
        async with LivePipeline(switcher) as pipe:
            await pipe.wait_for(lambda: pipe.up_of(ErrorFrame), 5.0, recorder=pipe.up)
            await caller_says(pipe, before=0, during=5)  # the call still runs
            await pipe.wait_for(lambda: pipe.down_of(VADUserStoppedSpeakingFrame), 2.0)
    # Both connect at once: whichever refusal comes first, the second was refused as well and
    # the stage ends with nowhere to go.
    assert switcher.stats.switches <= 1
    assert pipe.down_of(ProviderSwitchedFrame)[-1].serving == ""
    error = pipe.up_of(ErrorFrame)[-1]
    assert "can no longer do its job" in error.error
    assert "HTTP 401" in error.error or "HTTP 429" in error.error


def test_the_hand_over_pre_roll_is_half_a_second_of_audio_whatever_the_frame_size():
    """The transport gathers the caller's audio into 40 ms frames: the pre-roll handed to the
    next STT is still the last 0.5 s of whole frames (12 such frames, not 25)."""
    stage = STTFallback([FrameProcessor(), FrameProcessor()], preroll_s=0.5)
    for _ in range(50):  # two seconds of caller audio, 40 ms a frame
        stage._keep_recent(InputAudioRawFrame(b"\x00\x00" * 640, 16000, 1), 0.04)
    assert len(stage._recent) == 12 and abs(stage._recent_s - 0.48) < 1e-9
