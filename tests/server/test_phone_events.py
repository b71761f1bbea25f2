"""Which frames the softphone page is told about, and how (voiceagent.server.phone_events)."""

from __future__ import annotations

import json

from pipecat.frames.frames import (
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    TranscriptionFrame,
    TTSTextFrame,
)

from voiceagent.frames import AgentHeardFrame, TurnMetricsFrame, UserTurnCommittedFrame
from voiceagent.server.phone_events import PageEvents, page_event


def event(frame):
    text = page_event(frame)
    return None if text is None else json.loads(text)


def test_the_caller_side_partials_finals_and_the_commit() -> None:
    assert event(InterimTranscriptionFrame("When do", "caller", "t")) == {
        "event": "phone",
        "type": "partial",
        "text": "When do",
    }
    assert event(TranscriptionFrame("When do you open?", "caller", "t"))["type"] == "final"
    committed = UserTurnCommittedFrame(turn_id=3, text="When do you open?", reason="final")
    assert event(committed) == {
        "event": "phone",
        "type": "committed",
        "turn": 3,
        "text": "When do you open?",
        "reason": "final",
        "revision": False,
    }
    assert event(InterimTranscriptionFrame("", "caller", "t")) is None


def test_the_agent_side_what_it_says_and_what_was_heard() -> None:
    assert event(TTSTextFrame("Sure,", "sentence"))["text"] == "Sure,"
    assert event(TTSTextFrame("  ", "sentence")) is None
    heard = AgentHeardFrame(
        turn_id=2,
        text="We open at",
        full_text="We open at nine.",
        interrupted=True,
        unheard_text="nine.",
    )
    assert event(heard) == {
        "event": "phone",
        "type": "heard",
        "turn": 2,
        "text": "We open at",
        "full_text": "We open at nine.",
        "interrupted": True,
        "unheard": "nine.",
    }
    assert event(AgentHeardFrame(turn_id=4)) is None  # a turn with nothing said


def test_turn_figures_go_out_whole_and_anything_else_is_not_told() -> None:
    metrics = TurnMetricsFrame(turn_id=5, data={"silence_s": 0.45, "hesitation": False})
    assert event(metrics) == {
        "event": "phone",
        "type": "metrics",
        "turn": 5,
        "data": {"silence_s": 0.45, "hesitation": False},
    }
    assert event(InputAudioRawFrame(b"\x00\x00" * 320, 16000, 1)) is None
    assert event(InterruptionFrame()) is None


async def test_the_observer_stops_quietly_once_the_socket_is_gone() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        if len(sent) == 1:
            raise ConnectionResetError("the media socket is closed")
        sent.append(text)

    class Pushed:
        def __init__(self, frame) -> None:
            self.frame = frame

    observer = PageEvents(send, "BR1")
    assert not observer.observe_every_push
    await observer.on_push_frame(Pushed(TTSTextFrame("One.", "sentence")))
    await observer.on_push_frame(Pushed(TTSTextFrame("Two.", "sentence")))
    await observer.on_push_frame(Pushed(TTSTextFrame("Three.", "sentence")))
    assert [json.loads(t)["text"] for t in sent] == ["One."] and observer.sent == 1
