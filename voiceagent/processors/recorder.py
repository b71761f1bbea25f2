"""The call recorder: two taps on the pipeline and one on TwilioOutput, sharing a recording.

    TwilioSerializer → CallerTap → … the call's stages … → AgentTap → TwilioOutput
                       (start, caller audio              (committed turns, metrics ↓;
                        as it arrives, end)               heard agent turns ↑, tool calls)

- :class:`CallerTap` sits first, so the caller's audio is timed by its arrival whatever the
  stages do with it (an STT may consume it).
- :class:`AgentTap` sits last: every caller turn and metric frame the stages pushed
  downstream has passed, and ``AgentHeardFrame`` (pushed upstream by TwilioOutput when an
  agent turn finished playing or was cut) reaches it first.
- TwilioOutput's ``playout_taps`` report each 20 ms of agent audio *as sent to Twilio* and
  each ``clear`` (see :mod:`voiceagent.storage.recording`), so audio dropped on barge-in
  before it played is not recorded as heard.

Both taps forward every frame unchanged and run in pipecat's direct mode: a frame is recorded
and passed on in the task that pushed it, without a queue and a task switch of the tap's own
(fifty caller frames a second per call). The recording is completed when the pipeline is
cleaned up (after ``EndFrame`` or ``CancelFrame``), whichever tap gets there first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.frames import (
    AgentHeardFrame,
    AnswerVerdictFrame,
    CallEndedFrame,
    CallEndReasonFrame,
    CallStartedFrame,
    ProviderSwitchedFrame,
    TurnMetricsFrame,
    UserTurnCommittedFrame,
    pass_caller_audio,
)
from voiceagent.storage.recording import CallRecording

if TYPE_CHECKING:
    from voiceagent.transports.twilio.output import TwilioOutput
    from voiceagent.transports.twilio.serializer import TwilioSerializer


class _RecordingTap(FrameProcessor):
    """Forwards everything; completes the recording at the end of the pipeline."""

    def __init__(self, recording: CallRecording, **kwargs: Any) -> None:
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        self.recording = recording

    def _on_end(self, frame: Frame) -> None:
        if isinstance(frame, CallEndedFrame):
            self.recording.mark_ended(frame.reason, transport_gone=True)
        elif isinstance(frame, CancelFrame):
            self.recording.mark_ended("cancelled")
        elif isinstance(frame, EndFrame):
            self.recording.mark_ended("ended")

    async def cleanup(self) -> None:
        """Complete the call's recording (idempotent; the other tap may have done it)."""
        await super().cleanup()
        await self.recording.close()


class CallerTap(_RecordingTap):
    """First in the pipeline: the call's start and end, and the caller's audio."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Record the caller side, forward the frame."""
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, InputAudioRawFrame):
            self.recording.caller_audio(frame.audio, frame.sample_rate, frame.num_channels)
            if await pass_caller_audio(self, frame):
                return
        await super().process_frame(frame, direction)
        if isinstance(frame, CallStartedFrame):
            self.recording.start(
                call_sid=frame.call_sid,
                stream_sid=frame.stream_sid,
                account_sid=frame.account_sid,
                parameters=frame.custom_parameters,
            )
        elif isinstance(frame, CallEndedFrame | EndFrame | CancelFrame):
            self._on_end(frame)
        await self.push_frame(frame, direction)


class AgentTap(_RecordingTap):
    """Last before the output: the transcript, the end reason and who answered.

    Caller turns, heard agent turns and tool calls; the agent's declared end reason; its
    verdicts on who answered an outbound call.
    """

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Record the transcript frames, forward the frame."""
        await super().process_frame(frame, direction)
        recording = self.recording
        if isinstance(frame, UserTurnCommittedFrame) and frame.revision:
            recording.caller_revised(frame.turn_id, frame.text)
        elif isinstance(frame, UserTurnCommittedFrame):
            recording.caller_turn(
                frame.turn_id,
                frame.text,
                {"reason": frame.reason, "speculative_hit": frame.speculative_hit},
                at=frame.at or None,  # the decision's time, not when the frame got here
            )
        elif isinstance(frame, AgentHeardFrame):
            if frame.full_text or frame.text:
                recording.agent_turn(
                    frame.turn_id,
                    frame.text,
                    frame.full_text,
                    interrupted=frame.interrupted,
                    unheard=frame.unheard_text,
                    in_context=frame.in_context,
                )
        elif isinstance(frame, TurnMetricsFrame):
            recording.turn_metrics(frame.turn_id, frame.data)
        elif isinstance(frame, CallEndReasonFrame):
            recording.declare_end_reason(frame.reason)
        elif isinstance(frame, AnswerVerdictFrame):
            # Twilio's AMD result is recorded by the server as its callback arrives; the
            # detector's verdict that only relays it would show it twice.
            if frame.evidence != "twilio_amd":
                recording.answered_by(frame.answered_by, frame.evidence)
        elif isinstance(frame, ProviderSwitchedFrame):
            recording.provider_switch(frame.stage, frame.failed, frame.serving, frame.reason)
        elif isinstance(frame, FunctionCallInProgressFrame):
            recording.tool_call(
                "call", frame.function_name, frame.tool_call_id, {"arguments": frame.arguments}
            )
        elif isinstance(frame, FunctionCallResultFrame):
            recording.tool_call(
                "result",
                frame.function_name,
                frame.tool_call_id,
                {"arguments": frame.arguments, "result": frame.result, "error": frame.error},
            )
        elif isinstance(frame, CallEndedFrame | EndFrame | CancelFrame):
            self._on_end(frame)
        await self.push_frame(frame, direction)


def recorder_taps(
    recording: CallRecording,
    output: TwilioOutput | None = None,
    serializer: TwilioSerializer | None = None,
) -> tuple[CallerTap, AgentTap]:
    """The two taps of one call's recording; ``output``'s sent audio is recorded too.

    Place the first right after the transport's source, the second right before its output.
    ``serializer``'s estimate of the stream's start puts the call's timeline on the stream clock.
    """
    if output is not None:
        output.playout_taps.append(recording)
        recording.agent_line_format = output.line_format
    if serializer is not None:
        recording.stream_origin = lambda: serializer.stream_origin
    return CallerTap(recording), AgentTap(recording)
