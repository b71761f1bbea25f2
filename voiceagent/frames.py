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


# --- telephony: how a call ends, answering machines ------------------------------------------


@dataclass
class CallEndReasonFrame(SystemFrame):
    """The agent ended its part of the call for this reason (``voiceagent.telephony.EndReason``).

    Pushed downstream by ``CallHangUp`` right before it ends the pipeline (``agent_hung_up``,
    ``transferred``, ``voicemail``); the call recording keeps the first reason it is told.
    """

    reason: str = ""
    detail: str = ""


@dataclass
class AnsweredByFrame(SystemFrame):
    """Twilio's answering machine detection result for this call (its ``AnsweredBy``).

    Queued into the call's pipeline by the server when the ``AsyncAmdStatusCallback`` arrives:
    ``human``, ``machine_start``, ``machine_end_beep``, ``machine_end_silence``,
    ``machine_end_other``, ``fax`` or ``unknown``.
    """

    answered_by: str = ""


@dataclass
class AnswerVerdictFrame(SystemFrame):
    """Who answered an outbound call: a person, or a machine (and whether its greeting ended).

    Pushed downstream by the ``AnsweringMachineDetector`` on each decision; on a machine the
    ``VoicemailResponder`` mutes the conversation, then leaves the message or hangs up, and
    the call's record keeps every verdict. ``answered_by`` uses Twilio's words (``human``,
    ``machine_start``, ``machine_end_beep``, ``machine_end_silence``, ``fax``, ``unknown``…);
    ``evidence`` says what gave it away (``beep``, ``long_greeting``, ``wording``,
    ``short_first_utterance``, ``twilio_amd``, ``silence``).
    """

    answered_by: str = "machine_start"
    greeting_ended: bool = False
    evidence: str = ""
