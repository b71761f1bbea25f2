"""Records a call's timeline from its frames: a pipecat observer that feeds the call recording.

:class:`FrameTimeline` decides which frame is which timeline event (pure: frames in, events
out; tested without a pipeline). :class:`TimelineObserver` is the pipecat observer the server
adds to every recorded call: it sees each frame the first time it is pushed, wherever in the
pipeline that is, so it depends on the frames and not on which stage makes them (any bot's
pipeline is recorded alike). Observers are told after the push, through a queue; the event is
timed at the push itself (the frame's pipeline timestamp), so the queue's delay does not count.

What the recorder taps already keep (committed turns, heard agent turns, metrics, tool calls)
and what the output reports itself (agent audio sent, marks sent, clears) is not repeated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    AggregatedTextFrame,
    EagerEndOfTurnCancelFrame,
    ErrorFrame,
    Frame,
    InputDTMFFrame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.frames import (
    CallerSoundFrame,
    PlaybackMarkFrame,
    PlaybackPauseFrame,
    PlaybackResumeFrame,
    TurnDecisionFrame,
)
from voiceagent.server.call_worker import WatchingObserver
from voiceagent.storage.recording import CallRecording

_WATCHED = (
    CallerSoundFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    InputDTMFFrame,
    LLMContextFrame,
    EagerEndOfTurnCancelFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    AggregatedTextFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSAudioRawFrame,
    TurnDecisionFrame,
    PlaybackPauseFrame,
    PlaybackResumeFrame,
    PlaybackMarkFrame,
    ErrorFrame,
)
_DOWNSTREAM_ONLY = (
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
)
_MAX_TEXT = 400


@dataclass(frozen=True)
class FrameEvent:
    """A timeline event a frame makes; ``back_s``: how long before the push it happened."""

    kind: str
    text: str = ""
    data: dict[str, Any] | None = None
    back_s: float = 0.0


class FrameTimeline:
    """Which frames are timeline events (with the little state "first of its reply" needs)."""

    def __init__(self) -> None:
        self._token_due = False
        self._audio_due = False

    def event(  # noqa: C901 (one branch per frame)
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM
    ) -> FrameEvent | None:
        """The event ``frame`` makes, or None (most frames make none).

        A frame broadcast both ways (the VAD's) is two frames: only the downstream one counts.
        """
        if not isinstance(frame, _WATCHED):
            return None
        if direction is not FrameDirection.DOWNSTREAM and isinstance(frame, _DOWNSTREAM_ONLY):
            return None
        if isinstance(frame, TTSAudioRawFrame):
            if not self._audio_due:
                return None
            self._audio_due = False
            return FrameEvent("tts_audio", data={"sample_rate": frame.sample_rate})
        if isinstance(frame, LLMTextFrame):
            if not self._token_due:
                return None
            self._token_due = False
            return FrameEvent("llm_first_token", frame.text[:_MAX_TEXT])
        if isinstance(frame, CallerSoundFrame):
            return FrameEvent("sound", data={"sounding": frame.sounding}, back_s=frame.since_s)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            return FrameEvent("speech_start", back_s=frame.start_secs)
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            return FrameEvent("speech_end", back_s=frame.stop_secs)
        if isinstance(frame, InterimTranscriptionFrame):
            return FrameEvent("partial", frame.text[:_MAX_TEXT]) if frame.text else None
        if isinstance(frame, TranscriptionFrame):
            return FrameEvent("final", frame.text[:_MAX_TEXT]) if frame.text else None
        if isinstance(frame, InputDTMFFrame):
            return FrameEvent("dtmf", str(frame.button.value))
        if isinstance(frame, LLMContextFrame):
            self._token_due = True
            if getattr(frame, "speculation", False):
                return FrameEvent("speculate", _last_user_text(frame))
            return FrameEvent("llm_request", _last_user_text(frame))
        if isinstance(frame, EagerEndOfTurnCancelFrame):
            return FrameEvent("speculation_cancel")
        if isinstance(frame, LLMFullResponseStartFrame):
            self._token_due = True
            return None
        if isinstance(frame, TTSTextFrame):
            return None  # the text of audio already made (the agent's words, as spoken)
        if isinstance(frame, AggregatedTextFrame | TTSSpeakFrame):
            fixed = {"fixed": True} if isinstance(frame, TTSSpeakFrame) else None
            return FrameEvent("chunk", frame.text[:_MAX_TEXT], data=fixed)
        if isinstance(frame, TTSStartedFrame):
            self._audio_due = True
            return None
        if isinstance(frame, TurnDecisionFrame):
            data = {"kind": frame.kind, "reason": frame.reason}
            return FrameEvent("decision", frame.text[:_MAX_TEXT], data=data)
        if isinstance(frame, PlaybackPauseFrame):
            return FrameEvent("pause", data={"reason": frame.reason})
        if isinstance(frame, PlaybackResumeFrame):
            return FrameEvent("resume", data={"reason": frame.reason})
        if isinstance(frame, PlaybackMarkFrame):
            return FrameEvent("mark_echo", frame.mark_name)
        assert isinstance(frame, ErrorFrame)
        return FrameEvent("error", str(frame.error)[:_MAX_TEXT], data={"fatal": frame.fatal})


def _last_user_text(frame: LLMContextFrame) -> str:
    """The newest caller words in the context (what the generation answers)."""
    try:
        messages = frame.context.get_messages()
    except Exception:
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content[:_MAX_TEXT] if isinstance(content, str) else ""
    return ""


class TimelineObserver(WatchingObserver):
    """Writes the timeline events of one call's frames into its recording."""

    watched = _WATCHED

    def __init__(self, recording: CallRecording, *, clock: Clock = DEFAULT_CLOCK) -> None:
        """Create the observer.

        Args:
            recording: The call's recording (events before its start are dropped by it).
            clock: The recording's clock (events are timed on it).
        """
        super().__init__(observe_every_push=False)
        self._recording = recording
        self._clock = clock
        self._frames = FrameTimeline()
        self._failed = False

    async def on_push_frame(self, data: FramePushed) -> None:
        """Record the event a newly pushed frame makes, timed at its push."""
        try:
            event = self._frames.event(data.frame, data.direction)
            if event is None:
                return
            at = self._clock.now() - self._queued_s(data) - event.back_s
            self._recording.timeline_event(event.kind, at, text=event.text, data=event.data)
        except Exception as e:  # the timeline must never break a call
            if not self._failed:
                self._failed = True
                logger.opt(exception=e).warning(f"call timeline: recording an event failed: {e!r}")

    @staticmethod
    def _queued_s(data: FramePushed) -> float:
        """How long ago the frame was pushed (observers are told through a queue)."""
        try:
            now_ns = data.source.get_clock().get_time()
        except Exception:
            return 0.0
        if not data.timestamp or now_ns < data.timestamp:
            return 0.0
        return (now_ns - data.timestamp) / 1e9
