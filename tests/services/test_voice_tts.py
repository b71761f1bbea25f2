"""VoiceTTSService: a TTS written the Pipecat way (only ``run_tts``) brackets each reply and
pushes each chunk's text after its audio; on pipecat's bare ``TTSService`` it does not.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from loguru import logger
from pipecat.frames.frames import (
    AggregatedTextFrame,
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.services.tts_service import TTSService
from pipecat.utils.text.base_text_aggregator import TextType

from voiceagent.clock import ManualClock
from voiceagent.services.tts import VoiceTTSService

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "processors"))
from clocked_pipeline import Call  # noqa: E402

CHUNKS = ["Sure,", "we open at nine."]


async def beep(text: str, context_id: str) -> AsyncGenerator[Frame, None]:
    """10 ms of audio per character, in two pieces: what a provider's stream yields."""
    samples = 160 * len(text)
    for _ in range(2):
        yield TTSAudioRawFrame(b"\x01\x00" * (samples // 2), 16000, 1, context_id=context_id)


class PipecatWayTTS(TTSService):
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        async for frame in beep(text, context_id):
            yield frame


class VoiceWayTTS(VoiceTTSService):
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        async for frame in beep(text, context_id):
            yield frame


async def speak_reply(tts: TTSService, until: type[Frame]) -> list[Frame]:
    """One LLM reply of two chunks through ``tts``; the frames it pushed (up to ``until``)."""
    async with Call(tts, ManualClock()) as call:
        chunks = [AggregatedTextFrame(chunk, TextType.SENTENCE) for chunk in CHUNKS]
        await call.send(LLMFullResponseStartFrame(), *chunks, LLMFullResponseEndFrame())
        for _ in range(200):  # waiting for the service's own tasks, not asserting a time
            if any(isinstance(f, until) for f in call.down):
                break
            await asyncio.sleep(0.01)
        kinds = (TTSStartedFrame, TTSAudioRawFrame, TTSTextFrame, TTSStoppedFrame)
        return [f for f in call.down if isinstance(f, kinds)]


def shape(frames: list[Frame]) -> list[str]:
    """``started``, ``audio`` (runs collapsed), ``text:<chunk>``, ``stopped``."""
    out: list[str] = []
    for frame in frames:
        if isinstance(frame, TTSStartedFrame):
            out.append("started")
        elif isinstance(frame, TTSStoppedFrame):
            out.append("stopped")
        elif isinstance(frame, TTSTextFrame):
            out.append(f"text:{frame.text}")
        elif not out or out[-1] != "audio":
            out.append("audio")
    return out


async def test_on_voiceagents_base_a_reply_is_bracketed_and_each_text_follows_its_audio():
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m), level="ERROR")
    try:
        frames = await speak_reply(VoiceWayTTS(), until=TTSStoppedFrame)
    finally:
        logger.remove(sink)
    assert shape(frames) == [
        "started",
        "audio",
        "text:Sure,",
        "audio",
        "text:we open at nine.",
        "stopped",
    ]
    assert not [e for e in errors if "NOT_GIVEN" in e]  # complete settings, no start-up error


async def test_on_pipecats_bare_base_the_same_tts_never_says_where_a_reply_ends():
    """Why the base exists: this TTS made every agent turn count as cut off (issue 10)."""
    frames = await speak_reply(PipecatWayTTS(), until=TTSTextFrame)
    assert "started" not in shape(frames) and "stopped" not in shape(frames)


@pytest.mark.parametrize("explicit", [False])
def test_explicit_arguments_still_win(explicit: bool):
    tts = VoiceWayTTS(push_start_frame=explicit)
    assert tts._push_start_frame is explicit and tts._push_stop_frames is True
