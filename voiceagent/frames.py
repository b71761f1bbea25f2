"""Frames for ideas pipecat lacks. Everything else reuses pipecat's frames.

Pipecat frames used across voiceagent (for reference):
- ``InputAudioRawFrame`` (caller PCM16 mono, pipeline rate), ``InputDTMFFrame``.
- ``VADUserStartedSpeakingFrame`` / ``VADUserStoppedSpeakingFrame`` (from pipecat's VADProcessor).
- ``InterimTranscriptionFrame`` (a partial) and ``TranscriptionFrame`` (a final); an STT may
  attach the audio they cover (``set_audio_span``).
- ``UserStartedSpeakingFrame`` / ``UserStoppedSpeakingFrame``: the caller's turn opened /
  was committed (from the turn engine); ``EagerEndOfTurnCancelFrame`` withdraws a speculation.
- ``LLMContextFrame`` (``speculation=True``: the reply is held until ``UserStoppedSpeakingFrame``)
  → LLM → ``LLMFullResponseStartFrame``, ``LLMTextFrame``*, ``LLMFullResponseEndFrame``.
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

from pipecat.frames.frames import ControlFrame, Frame, InputAudioRawFrame, SystemFrame
from pipecat.processors.frame_processor import FrameProcessor

_SPAN_KEY = "voiceagent.audio_span"


@dataclass(frozen=True, slots=True)
class SpokenWord:
    """One recognised word and when the caller said it (call clock seconds)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class AudioSpan:
    """The caller audio a transcript covers, on the call's clock.

    ``start``/``end``: the audio the STT had recognised when it produced the transcript (for a
    streaming STT: its result window). ``words``: the words with their own times, when the STT
    gives them. Times are call-clock seconds: the time at which that audio reached the
    pipeline, so they compare directly with VAD events and timers.
    """

    start: float
    end: float
    words: tuple[SpokenWord, ...] = ()


def set_audio_span(frame: Frame, span: AudioSpan) -> None:
    """Attach the caller audio a transcript frame covers (any pipecat transcript frame)."""
    frame.metadata[_SPAN_KEY] = span


def audio_span(frame: Frame) -> AudioSpan | None:
    """The audio span an STT attached to a transcript frame, if any."""
    span = frame.metadata.get(_SPAN_KEY)
    return span if isinstance(span, AudioSpan) else None


@dataclass
class CallStartedFrame(SystemFrame):
    """Twilio's ``start`` message: the call is live. Pushed downstream by TwilioSerializer."""

    stream_sid: str = ""
    call_sid: str = ""
    account_sid: str = ""
    custom_parameters: dict[str, str] = field(default_factory=dict)
    tracks: list[str] = field(default_factory=list)
    agent_echo: Any = None
    """The transport's record of the agent audio it plays (``AgentEcho``), for the voice stage."""


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
    in_context: bool = True
    """False for speech that is not part of the conversation (a re-prompt): recorded, not
    offered to the LLM."""


@dataclass
class UserTurnCommittedFrame(SystemFrame):
    """The turn engine committed the caller's utterance (for observers, metrics).

    ``revision`` is True when this is a later, fuller text of an already committed turn
    (a late final): the same ``turn_id``, never a second caller turn.
    """

    turn_id: int = 0
    text: str = ""
    speculative_hit: bool = False
    reason: str = ""
    at: float = 0.0
    revision: bool = False


@dataclass
class ConversationUpdatedFrame(SystemFrame):
    """The conversation changed (agent speech was heard): the next request will start with it.

    Pushed downstream by the turn processor; an LLM service may pre-evaluate ``context`` so the
    caller's next turn costs only its own tokens (the local llama.cpp server does).
    """

    context: Any = None


@dataclass
class PlaybackPauseFrame(SystemFrame):
    """Stop sending agent audio to the caller for now (a sound over the agent, a held start).

    What is already in the carrier's buffer still plays; nothing queued is dropped.
    """

    reason: str = ""


@dataclass
class PlaybackResumeFrame(SystemFrame):
    """Send agent audio again after a ``PlaybackPauseFrame``."""

    reason: str = ""


@dataclass
class TurnMetricsFrame(SystemFrame):
    """Per-turn record for metrics/eval: a flat dict of named figures."""

    turn_id: int = 0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class TurnCountsFrame(SystemFrame):
    """How much each turn-taking counter of the call grew (``TurnStats`` names), downstream.

    Pushed by the turn engine's processor whenever a counter changed; the server sums them
    over every call of every bot for ``/metrics``.
    """

    changes: dict[str, int] = field(default_factory=dict)


@dataclass
class EndOfTurnFrame(SystemFrame):
    """The end-of-turn model's verdict on the caller's audio at a VAD stop.

    Pushed downstream by the EndOfTurnDetector; the turn engine waits longer when
    ``complete`` is False (the caller sounds unfinished).
    """

    complete: bool = True
    probability: float | None = None
    inference_ms: float | None = None


@dataclass
class CallerSoundFrame(SystemFrame):
    """The caller's line went from quiet to sound (``sounding``) or back, frame-fast.

    Pushed downstream by the caller voice stage from audio energy, a few hundred ms before the
    VAD confirms speech. The turn engine pauses agent audio for it (barge-in, held start).
    ``since_s``: how long before this frame the change happened (the frames it took to be sure).
    """

    sounding: bool = True
    since_s: float = 0.0


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
class TurnDecisionFrame(SystemFrame):
    """What the turn engine decided, for observers (the call's timeline), before it is done.

    Pushed downstream by the ``TurnProcessor`` for the decisions that carry a reason no other
    frame tells: ``kind`` is ``barge_in`` (the caller took the floor: ``reason`` is
    ``words``, ``duration`` or ``dtmf``), ``cancel_reply`` (a reply nobody heard was dropped),
    ``reply`` (a reply started on the conversation as it stands: ``watchdog``,
    ``tool_results``, ``wordless_resume``…) or ``say`` (fixed words: ``greeting``,
    ``reprompt``, ``fallback``, ``resume``; ``text``). Nothing acts on it.
    """

    kind: str = ""
    reason: str = ""
    text: str = ""


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
class CallerWordsFrame(SystemFrame):
    """What the STT heard the other party say, sent back up to the answering machine detector.

    Pushed upstream by ``MachineWords`` (right after the STT) while the detector is listening:
    the detector sits before the STT, where the caller's audio still flows.
    """

    text: str = ""
    final: bool = False


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


@dataclass
class AnswerPendingFrame(SystemFrame):
    """The other party's first words may be an answering machine's greeting (``holding``).

    Pushed downstream by the ``AnsweringMachineDetector`` when such an utterance starts and
    when it is settled without a verdict; ``MachineWords`` keeps the caller's speech from the
    turn engine meanwhile (released on a person's verdict, dropped on a machine's).
    """

    holding: bool = True


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


async def pass_caller_audio(processor: FrameProcessor, frame: InputAudioRawFrame) -> bool:
    """Hand caller audio from ``processor`` straight to the next stage; False if there is none.

    The caller's audio crosses the first stages fifty times a second per call (serializer,
    recorder tap, voice stage). pipecat's ``push_frame`` runs push hooks, tells the observers
    (none of ours watches caller audio) and formats a trace line for every push, trace logging
    on or not; this queues the frame into the next stage as ``push_frame`` ends up doing,
    without the rest. Every other frame goes the usual way.
    """
    stage = processor.next
    if stage is None:
        return False
    await stage.queue_frame(frame)
    return True
