"""A pass-through processor that timestamps the frames a latency breakdown needs.

Insert one after a pipeline stage (``build_call_processors(extra={stage: [Probe(...)]})``);
it records ``(monotonic time, stage, event, detail)`` into a shared list and forwards
everything untouched. Audio and other high-rate frames are only checked by type.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EagerEndOfTurnCancelFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.frames import PlaybackPauseFrame, TurnMetricsFrame, UserTurnCommittedFrame

_DOWN = FrameDirection.DOWNSTREAM
_UP = FrameDirection.UPSTREAM


@dataclass(frozen=True)
class ProbeEvent:
    """One timestamped observation."""

    t: float  # time.monotonic()
    stage: str
    event: str
    detail: Any = None


class Probe(FrameProcessor):
    """Records turn-taking milestones seen after ``stage``; forwards every frame."""

    def __init__(self, stage: str, events: list[ProbeEvent], **kwargs) -> None:
        super().__init__(**kwargs)
        self._stage = stage
        self._events = events
        self._in_reply = False
        self._text_seen = False
        self._audio_seen = False

    def _note(self, event: str, detail: Any = None) -> None:
        self._events.append(ProbeEvent(time.monotonic(), self._stage, event, detail))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Note milestones, forward the frame."""
        await super().process_frame(frame, direction)
        if direction is _DOWN:
            self._downstream(frame)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._note("bot_started")
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._note("bot_stopped")
        await self.push_frame(frame, direction)

    def _downstream(self, frame: Frame) -> None:
        if isinstance(frame, TTSAudioRawFrame):
            if not self._audio_seen:
                self._audio_seen = True
                self._note("first_tts_audio")
        elif isinstance(frame, LLMTextFrame):
            if self._in_reply and not self._text_seen:
                self._text_seen = True
                self._note("first_text", frame.text)
        elif isinstance(frame, AggregatedTextFrame) and not isinstance(frame, TTSTextFrame):
            self._note("chunk", frame.text)
        elif isinstance(frame, TTSStartedFrame):
            self._audio_seen = False
            self._note("tts_started")
        elif isinstance(frame, LLMFullResponseStartFrame):
            self._in_reply, self._text_seen = True, False
            self._note("reply_start")
        elif isinstance(frame, LLMFullResponseEndFrame):
            self._in_reply = False
            self._note("reply_end")
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._note("vad_start", frame.start_secs)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._note("vad_stop", frame.stop_secs)
        elif isinstance(frame, TranscriptionFrame):
            self._note("final", frame.text)
        elif isinstance(frame, InterimTranscriptionFrame):
            self._note("partial", frame.text)
        elif isinstance(frame, UserTurnCommittedFrame):
            event = "revision" if frame.revision else "commit"
            self._note(event, (frame.turn_id, frame.speculative_hit, frame.text))
        elif isinstance(frame, TurnMetricsFrame):
            self._note("turn_metrics", dict(frame.data))
        elif isinstance(frame, EagerEndOfTurnCancelFrame):
            self._note("llm_cancel")
        elif isinstance(frame, LLMContextFrame):
            self._note("speculate" if frame.speculation else "llm_request")
        elif isinstance(frame, InterruptionFrame):
            self._note("interruption")
        elif isinstance(frame, PlaybackPauseFrame):
            self._note("pause", frame.reason)
