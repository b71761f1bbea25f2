"""TwilioMarks: a TTS reply becomes a plan for the serializer (at once) and marks in send order."""

from __future__ import annotations

import sys
from pathlib import Path

from pipecat.frames.frames import (
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)

from voiceagent.clock import ManualClock
from voiceagent.transports.twilio.marks import (
    SegmentMarkFrame,
    SegmentPlanFrame,
    SyncMarkFrame,
    TwilioMarks,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "processors"))
from clocked_pipeline import Call  # noqa: E402


def audio(ms: int, rate: int = 24000) -> TTSAudioRawFrame:
    return TTSAudioRawFrame(b"\x00\x00" * (rate * ms // 1000), rate, 1)


def plans(frames: list) -> list[tuple]:
    return [
        (f.edge, f.turn_id, f.mark, f.text, round(f.seconds, 3))
        for f in frames
        if isinstance(f, SegmentPlanFrame)
    ]


def wire(frames: list) -> list[str]:
    """The frames the output sends in order, as short names."""
    out = []
    for f in frames:
        if isinstance(f, SegmentMarkFrame):
            out.append(f"mark {f.mark}" if f.edge == "mark" else f.edge)
        elif isinstance(f, TTSTextFrame):
            out.append(f"text {f.text}")
        elif isinstance(f, TTSAudioRawFrame):
            out.append("audio")
    return out


async def test_a_reply_is_planned_at_once_and_marked_after_each_segments_audio():
    async with Call(TwilioMarks(), ManualClock()) as call:
        await call.send(
            TTSStartedFrame(),
            audio(100),
            TTSTextFrame("Sure,", "sentence"),
            audio(200),
            audio(100),
            TTSTextFrame("we open at nine.", "sentence"),
            TTSStoppedFrame(),
        )
        assert plans(call.down) == [
            ("turn_start", 1, "", "", 0.0),
            ("segment", 1, "a1.1", "Sure,", 0.1),
            ("segment", 1, "a1.2", "we open at nine.", 0.3),
            ("segment", 1, "a1.3", "", 0.0),  # the turn's end: its echo proves the end played
            ("turn_end", 1, "", "", 0.0),
        ]
        assert wire(call.down) == [
            "turn_start",
            "audio",
            "text Sure,",
            "flush",
            "mark a1.1",
            "audio",
            "audio",
            "text we open at nine.",
            "flush",
            "mark a1.2",
            "flush",
            "mark a1.3",
        ]


async def test_text_sent_before_its_audio_is_planned_with_the_audio_after_it():
    async with Call(TwilioMarks(), ManualClock()) as call:
        await call.send(
            TTSStartedFrame(),
            TTSTextFrame("One moment.", "sentence"),  # a TTS that announces its text
            audio(300),
            TTSTextFrame("Still there?", "sentence"),
            audio(200),
            TTSStoppedFrame(),
        )
        assert [(p[2], p[3], p[4]) for p in plans(call.down) if p[0] == "segment"] == [
            ("a1.1", "One moment. Still there?", 0.3),
            ("a1.2", "", 0.2),
        ]


async def test_each_reply_is_a_turn_and_an_interruption_asks_for_a_sync_mark():
    async with Call(TwilioMarks(), ManualClock()) as call:
        await call.send(TTSStartedFrame(), audio(100), TTSTextFrame("Hello.", "sentence"))
        await call.send(InterruptionFrame())
        await call.send(TTSStartedFrame(), audio(100), TTSTextFrame("Yes?", "sentence"))
        await call.send(TTSStoppedFrame())
        assert any(isinstance(f, SyncMarkFrame) for f in call.down)
        segments = [p for p in plans(call.down) if p[0] == "segment"]
        assert [(p[1], p[3]) for p in segments] == [(1, "Hello."), (2, "Yes?"), (2, "")]
