"""LocalPiperTTSService: the agent's chunks become 16 kHz speech, and a barge-in silences it."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("piper")

from pipecat.frames.frames import (  # noqa: E402
    AggregatedTextFrame,
    ErrorFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TextFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)

from voiceagent.services.local.piper_tts import LocalPiperTTSService  # noqa: E402
from voiceagent.settings import PIPELINE_SAMPLE_RATE, LocalModelSettings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/services: shared fakes
from fakes.harness import LivePipeline  # noqa: E402

SPEECH = (TTSStartedFrame, AggregatedTextFrame, TTSAudioRawFrame, TTSStoppedFrame)


@pytest.fixture(scope="module")
def voice_files() -> tuple[Path, Path]:
    from voiceagent.services.local.weights import resolve_piper_voice

    return resolve_piper_voice(LocalModelSettings())


def tts_for(files: tuple[Path, Path]) -> LocalPiperTTSService:
    model, config = files
    return LocalPiperTTSService(model_path=model, config_path=config)


def audio_seconds(frames) -> float:
    return sum(len(f.audio) / 2 / f.sample_rate for f in frames)


def rms(frames) -> float:
    pcm = np.frombuffer(b"".join(f.audio for f in frames), dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(pcm**2))) if pcm.size else 0.0


def test_missing_voice_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="Piper voice file not found"):
        LocalPiperTTSService(model_path=tmp_path / "x.onnx", config_path=tmp_path / "x.json")


async def test_a_corrupt_voice_reports_an_error_and_the_call_goes_on(tmp_path: Path):
    model, config = tmp_path / "bad.onnx", tmp_path / "bad.onnx.json"
    model.write_bytes(b"not an onnx model")
    config.write_text("{}")
    async with LivePipeline(LocalPiperTTSService(model_path=model, config_path=config)) as p:
        await p.wait_for(lambda: bool(p.up_of(ErrorFrame)), timeout=10, recorder=p.up)
        assert "cannot load Piper voice" in p.up_of(ErrorFrame)[0].error
        await p.push(LLMFullResponseStartFrame())
        await p.push(TextFrame("Hello?"))
        await p.push(LLMFullResponseEndFrame())
        await p.wait_for(lambda: bool(p.down_of(LLMFullResponseEndFrame)), timeout=10)
        assert not p.down_of(TTSAudioRawFrame)


@pytest.mark.models
async def test_agent_reply_of_two_chunks_is_spoken_in_order(voice_files):
    chunks = ["Sure, we open at nine tomorrow morning.", "See you then!"]
    async with LivePipeline(tts_for(voice_files), sample_rate=PIPELINE_SAMPLE_RATE) as p:
        sent = time.monotonic()
        await p.push(LLMFullResponseStartFrame())
        for chunk in chunks:
            await p.push(TextFrame(chunk))
        await p.push(LLMFullResponseEndFrame())
        await p.wait_for(lambda: bool(p.down_of(LLMFullResponseEndFrame)), timeout=20)

        first_audio = p.down.times[p.down.frames.index(p.down_of(TTSAudioRawFrame)[0])]
        done = p.down.times[-1]
        names = [
            type(f).__name__
            for f in p.down_of(
                LLMFullResponseStartFrame, *SPEECH, TTSTextFrame, LLMFullResponseEndFrame
            )
        ]
        # Observed order (one audio context per LLM response; one Piper chunk per sentence):
        assert names == [
            "LLMFullResponseStartFrame",
            "AggregatedTextFrame",  # announces chunk 1 (will_be_spoken), before its audio
            "TTSStartedFrame",
            "TTSAudioRawFrame",
            "TTSTextFrame",  # chunk 1's text right after its audio
            "AggregatedTextFrame",
            "TTSAudioRawFrame",
            "TTSTextFrame",
            "TTSStoppedFrame",
            "LLMFullResponseEndFrame",
        ]
        spoken = [f.text for f in p.down_of(TTSTextFrame)]
        assert spoken == chunks
        audio = p.down_of(TTSAudioRawFrame)
        assert {(f.sample_rate, f.num_channels) for f in audio} == {(PIPELINE_SAMPLE_RATE, 1)}
        assert all(len(f.audio) % 2 == 0 for f in audio)
        seconds = audio_seconds(audio)
        assert 2.0 < seconds < 8.0
        assert rms(audio) > 500  # speech, not silence
        assert not p.up_of(ErrorFrame)
        ttfa = first_audio - sent
        print(f"Piper TTFA {ttfa * 1000:.0f} ms; RTF {(done - sent) / seconds:.3f}")


@pytest.mark.models
async def test_chunks_outside_a_response_and_a_greeting_each_stop_at_once(voice_files):
    async with LivePipeline(tts_for(voice_files)) as p:
        await p.push(TTSSpeakFrame("Hello, thanks for calling Bright Smile Dental."))
        await p.push(TextFrame("How can I help you today?"))
        await p.wait_for(lambda: len(p.down_of(TTSStoppedFrame)) >= 2, timeout=2.5)
        assert len(p.down_of(TTSStartedFrame)) == 2
        assert [f.text for f in p.down_of(TTSTextFrame)] == [
            "Hello, thanks for calling Bright Smile Dental.",
            "How can I help you today?",
        ]


@pytest.mark.models
async def test_llm_tokens_fed_directly_are_aggregated_into_sentences(voice_files):
    tokens = ["Sure", ",", " we", " open", " at", " nine", ".", " See", " you", " then", "."]
    async with LivePipeline(tts_for(voice_files)) as p:
        await p.push(LLMFullResponseStartFrame())
        for token in tokens:
            await p.push(LLMTextFrame(token))
        await p.push(LLMFullResponseEndFrame())
        await p.wait_for(lambda: bool(p.down_of(LLMFullResponseEndFrame)), timeout=20)
        assert [f.text for f in p.down_of(TTSTextFrame)] == [
            "Sure, we open at nine.",
            "See you then.",
        ]


@pytest.mark.models
async def test_barge_in_after_first_sentence_drops_the_rest_of_the_chunk(voice_files):
    # The agent starts a long, five-sentence chunk; the caller barges in as soon as the first
    # audio comes out. Nothing more may come out after the interruption passes the TTS.
    chunk = " ".join(
        [
            "Our clinic offers cleanings, fillings, crowns and whitening for the whole family.",
            "We also have an orthodontist who visits every second Thursday of the month.",
            "Parking is free in the lot behind the building on Maple Street.",
            "Please bring your insurance card and a photo identification to your visit.",
            "If you need to cancel, call us at least a day ahead so we can help someone else.",
        ]
    )
    async with LivePipeline(tts_for(voice_files)) as p:
        await p.push(LLMFullResponseStartFrame())
        await p.push(TextFrame(chunk))
        await p.wait_for(lambda: bool(p.down_of(TTSAudioRawFrame)), timeout=20)
        barged_at = time.monotonic()
        await p.push(InterruptionFrame())
        await p.wait_for(lambda: bool(p.down_of(InterruptionFrame)), timeout=2)
        passed = p.down.frames.index(p.down_of(InterruptionFrame)[0])
        assert p.down.times[passed] - barged_at < 0.5

        await asyncio.sleep(1.0)  # several sentences' worth of Piper time
        after = [
            f for f in p.down.frames[passed:] if isinstance(f, (TTSAudioRawFrame, TTSTextFrame))
        ]
        assert after == []
        assert len(p.down_of(TTSAudioRawFrame)) < 5
        assert not p.down_of(TTSTextFrame)  # the chunk was never completed

        # The next reply is spoken normally.
        await p.push(LLMFullResponseStartFrame())
        await p.push(TextFrame("Sorry, go ahead."))
        await p.push(LLMFullResponseEndFrame())
        await p.wait_for(lambda: bool(p.down_of(TTSTextFrame)), timeout=20)
        assert p.down_of(TTSTextFrame)[0].text == "Sorry, go ahead."


@pytest.mark.models
async def test_barge_in_while_piper_synthesizes_a_sentence_drops_that_sentence(voice_files):
    sentence = (
        "Let me read you the full list of our opening hours for every single day of the week, "
        "including the public holidays, the summer schedule and the late evening appointments."
    )
    async with LivePipeline(tts_for(voice_files)) as p:
        await p.push(LLMFullResponseStartFrame())
        await p.push(TextFrame(sentence))
        await p.wait_for(lambda: bool(p.down_of(TTSStartedFrame)), timeout=20)
        await p.push(InterruptionFrame())  # Piper is busy with the sentence in its thread
        await p.wait_for(lambda: bool(p.down_of(InterruptionFrame)), timeout=2)
        await asyncio.sleep(1.0)
        assert not p.down_of(TTSAudioRawFrame)
        assert not p.down_of(TTSTextFrame)
