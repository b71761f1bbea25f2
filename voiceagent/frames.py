"""Frames for ideas pipecat lacks. Everything else reuses pipecat's frames.

Pipecat frames used across voiceagent (for reference):
- ``InputAudioRawFrame`` (caller PCM16 mono, pipeline rate), ``InputDTMFFrame``.
- ``VADUserStartedSpeakingFrame`` / ``VADUserStoppedSpeakingFrame`` (from pipecat's VADProcessor).
- ``InterimTranscriptionFrame`` (a partial) and ``TranscriptionFrame`` (a final).
- ``LLMContextFrame`` → LLM → ``LLMFullResponseStartFrame``, ``LLMTextFrame``*,
  ``LLMFullResponseEndFrame``.
- ``TTSSpeakFrame`` / ``AggregatedTextFrame`` → TTS → ``TTSStartedFrame``, ``TTSAudioRawFrame``*,
  ``TTSTextFrame``
  (the text of the audio just before it: one *segment*), ``TTSStoppedFrame``.
- ``InterruptionFrame`` (broadcast both ways on barge-in), ``BotStartedSpeakingFrame`` /
  ``BotStoppedSpeakingFrame`` (pushed both ways by TwilioOutput from real playback).
- ``EndFrame`` / ``CancelFrame`` end the call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import ControlFrame, SystemFrame


@dataclass
class CallStartedFrame(SystemFrame):
    """Twilio's ``start`` message: the call is live. Pushed downstream by TwilioSerializer."""

    stream_sid: str = ""
    call_sid: str = ""
    account_sid: str = ""
    custom_parameters: dict[str, str] = field(default_factory=dict)
    tracks: list[str] = field(default_factory=list)


@dataclass
class CallEndedFrame(SystemFrame):
    """Twilio's ``stop`` message (or the socket closed). Followed by an ``EndFrame``."""

    reason: str = "stop"


@dataclass
class PlaybackMarkFrame(SystemFrame):
    """A ``mark`` echoed by Twilio: the audio before that mark was played (unless after a clear)."""

    mark_name: str = ""


@dataclass
class AgentHeardFrame(SystemFrame):
    """What the caller actually heard of one agent turn, from Twilio mark echoes.

    Pushed upstream by TwilioOutput when an agent turn finishes playing or is
    interrupted. ``text`` is the heard prefix (whole segments acknowledged by marks,
    plus the played fraction of the segment being played at the interruption).
    """

    turn_id: int = 0
    text: str = ""
    full_text: str = ""
    interrupted: bool = False
    unheard_text: str = ""


@dataclass
class UserTurnCommittedFrame(SystemFrame):
    """The StabilityCommitRouter committed the caller's utterance (for observers, metrics)."""

    turn_id: int = 0
    text: str = ""
    speculative_hit: bool = False
    reason: str = ""
    at: float = 0.0


@dataclass
class LLMCancelFrame(SystemFrame):
    """Cancel the in-flight LLM generation (closing its HTTP stream); no global interruption."""

    turn_id: int = 0
    reason: str = ""


@dataclass
class SpeculationStartFrame(SystemFrame):
    """Output of the LLM generation for ``turn_id`` that follows must be held, not spoken."""

    turn_id: int = 0
    text: str = ""


@dataclass
class SpeculationCommitFrame(SystemFrame):
    """Release the held output of ``turn_id`` (the committed text equals the speculated text)."""

    turn_id: int = 0


@dataclass
class SpeculationDiscardFrame(SystemFrame):
    """Drop the held output of ``turn_id``; its generation was cancelled."""

    turn_id: int = 0


@dataclass
class TurnMetricsFrame(SystemFrame):
    """Per-turn record for metrics/eval: a flat dict of named figures."""

    turn_id: int = 0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResumeSpeechFrame(ControlFrame):
    """Re-speak text the caller did not hear (false-interruption resume)."""

    text: str = ""


@dataclass
class EndOfTurnFrame(SystemFrame):
    """The end-of-turn model's verdict on the caller's audio at a VAD stop.

    Pushed downstream by the EndOfTurnDetector; the StabilityCommitRouter waits longer when
    ``complete`` is False (the caller sounds unfinished).
    """

    complete: bool = True
    probability: float | None = None
    inference_ms: float | None = None


@dataclass
class CallerSoundFrame(SystemFrame):
    """The caller's line went from quiet to sound (``sounding``) or back, frame-fast.

    Pushed downstream by the CallerSoundDetector from audio energy, a few hundred ms before
    the VAD confirms speech. The FloorHold keeps a new agent turn from starting over it.
    """

    sounding: bool = True


@dataclass
class PlaybackFenceFrame(ControlFrame):
    """A point in the agent's output, in data order; survives interruptions.

    TwilioOutput answers with ``PlaybackFenceReachedFrame`` (upstream) once every agent turn
    that reached it before this frame has finished playing (or was cut).
    """

    fence_id: int = 0
    interruptible: bool = field(default=False, init=False)


@dataclass
class PlaybackFenceReachedFrame(SystemFrame):
    """Everything the agent said before fence ``fence_id`` has been played (or cut)."""

    fence_id: int = 0


@dataclass
class ProviderSwitchedFrame(SystemFrame):
    """A stage's provider failed; the next one serves the rest of the call.

    ``serving`` is empty when no provider is left. Pushed downstream by the stage's
    ``FallbackSwitcher``; the call's record keeps it.
    """

    stage: str = ""
    failed: str = ""
    serving: str = ""
    reason: str = ""
