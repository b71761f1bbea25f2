"""TTS fallback: a refusal or a lost socket hands the unspoken chunks to the next TTS."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest
from pipecat.frames.frames import (
    AggregatedTextFrame,
    ErrorFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSTextFrame,
)
from pipecat.utils.text.base_text_aggregator import TextType

from voiceagent.clock import ManualClock
from voiceagent.processors.fallback_stages import TTSFallback
from voiceagent.services.deepgram import create_deepgram_tts
from voiceagent.settings import CloudSettings, LocalModelSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/services: shared fakes
from fakes.fake_deepgram import FakeDeepgramTTS  # noqa: E402
from fakes.harness import LivePipeline, until  # noqa: E402

_session: list[aiohttp.ClientSession] = []


@pytest.fixture(autouse=True)
async def http_session():
    async with aiohttp.ClientSession() as session:
        _session.append(session)
        yield session
        _session.clear()


def tts_of(fake: FakeDeepgramTTS):
    cloud = CloudSettings(deepgram_api_key="dg-test-key", deepgram_url=fake.url)
    return create_deepgram_tts(cloud, _session[0])


def chunk(text: str) -> AggregatedTextFrame:
    return AggregatedTextFrame(text, TextType.SENTENCE)


async def reply(pipe: LivePipeline, *chunks: str) -> None:
    await pipe.push(LLMFullResponseStartFrame())
    for text in chunks:
        await pipe.push(chunk(text))
    await pipe.push(LLMFullResponseEndFrame())


def ends(pipe: LivePipeline, count: int):
    return lambda: len(pipe.down_of(LLMFullResponseEndFrame)) >= count


def heard(pipe: LivePipeline) -> list[str]:
    return [f.text.strip() for f in pipe.down_of(TTSTextFrame)]


async def test_a_refused_primary_leaves_the_greeting_to_the_next_tts():
    async with FakeDeepgramTTS() as primary, FakeDeepgramTTS() as backup:
        primary.reject_status = 429
        switcher = TTSFallback([tts_of(primary), tts_of(backup)], clock=ManualClock())
        async with LivePipeline(switcher) as pipe:
            await pipe.push(TTSSpeakFrame("Hello, thanks for calling."))
            await pipe.wait_for(lambda: pipe.down_of(TTSTextFrame), 5.0)
    assert primary.refused == [429] and not primary.spoken
    assert backup.spoken == ["Hello, thanks for calling."]
    assert sum(len(f.audio) for f in pipe.down_of(TTSAudioRawFrame)) == backup.audio_bytes_sent
    assert heard(pipe) == ["Hello, thanks for calling."]
    assert "HTTP 429" in switcher.stats.reasons[0]
    assert not pipe.up_of(ErrorFrame)


async def test_quota_hit_mid_call_the_next_tts_speaks_from_the_failed_chunk():
    async with FakeDeepgramTTS() as primary, FakeDeepgramTTS() as backup:
        switcher = TTSFallback([tts_of(primary), tts_of(backup)], clock=ManualClock())
        async with LivePipeline(switcher) as pipe:
            await reply(pipe, "We open at nine.")
            await pipe.wait_for(ends(pipe, 1), 5.0)
            # The account runs out of credit: the next request is refused.
            primary.reject_status = 402
            await reply(pipe, "Next Tuesday we have two openings.", "Two or four pm?")
            await pipe.wait_for(ends(pipe, 2), 8.0)
            await asyncio.sleep(0.1)
    assert primary.spoken == ["We open at nine."]
    assert backup.spoken == ["Next Tuesday we have two openings.", "Two or four pm?"]
    assert heard(pipe) == [
        "We open at nine.",
        "Next Tuesday we have two openings.",
        "Two or four pm?",
    ]
    assert len(pipe.down_of(LLMFullResponseStartFrame)) == 2  # each reply's brackets once
    assert switcher.stats.switches == 1
    assert not pipe.up_of(ErrorFrame)


async def test_a_failure_inside_a_reply_replays_the_chunks_not_yet_done():
    async with FakeDeepgramTTS() as primary, FakeDeepgramTTS() as backup:
        primary.silent = True  # takes the text, never answers: the chunks stay unfinished
        first, second = tts_of(primary), tts_of(backup)
        switcher = TTSFallback([first, second], clock=ManualClock())
        async with LivePipeline(switcher) as pipe:
            await pipe.push(LLMFullResponseStartFrame())
            await pipe.push(chunk("Sure,"))
            await pipe.push(chunk("the cleaning is 120 dollars."))
            await until(lambda: len(primary.spoken) == 1, 5.0)
            await first.push_error("Deepgram TTS: quota exceeded")  # as a failed request would
            await pipe.push(chunk("Shall I book it?"))
            await pipe.push(LLMFullResponseEndFrame())
            await pipe.wait_for(ends(pipe, 1), 8.0)
    assert backup.spoken == ["Sure,", "the cleaning is 120 dollars.", "Shall I book it?"]
    assert heard(pipe) == ["Sure,", "the cleaning is 120 dollars.", "Shall I book it?"]
    assert len(pipe.down_of(LLMFullResponseStartFrame)) == 1
    assert len(pipe.down_of(LLMFullResponseEndFrame)) == 1


async def test_a_healthy_primary_speaks_everything():
    async with FakeDeepgramTTS() as primary, FakeDeepgramTTS() as backup:
        switcher = TTSFallback([tts_of(primary), tts_of(backup)], clock=ManualClock())
        async with LivePipeline(switcher) as pipe:
            await reply(pipe, "Of course.", "See you Tuesday!")
            await pipe.wait_for(ends(pipe, 1), 5.0)
    assert primary.spoken == ["Of course.", "See you Tuesday!"] and not backup.spoken
    assert heard(pipe) == ["Of course.", "See you Tuesday!"]
    assert switcher.stats.switches == 0


@pytest.mark.models
async def test_quota_refused_the_local_piper_voice_speaks_the_reply():
    pytest.importorskip("piper")
    from voiceagent.services.local.piper_tts import LocalPiperTTSService
    from voiceagent.services.local.weights import resolve_piper_voice

    model, config = resolve_piper_voice(LocalModelSettings())
    async with FakeDeepgramTTS() as primary:
        primary.reject_status = 402
        piper = LocalPiperTTSService(model_path=model, config_path=config)
        switcher = TTSFallback([tts_of(primary), piper], clock=ManualClock())
        async with LivePipeline(switcher) as pipe:
            await reply(pipe, "Sure,", "we open at nine.")
            await pipe.wait_for(ends(pipe, 1), 20.0)
    seconds = sum(len(f.audio) / 2 / f.sample_rate for f in pipe.down_of(TTSAudioRawFrame))
    assert seconds > 0.8  # Piper's speech, resampled to the pipeline's 16 kHz
    assert all(f.sample_rate == 16000 for f in pipe.down_of(TTSAudioRawFrame))
    assert heard(pipe) == ["Sure,", "we open at nine."]
    assert switcher.active is piper and not primary.spoken
