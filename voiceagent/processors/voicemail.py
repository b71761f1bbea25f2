"""Answering machines on outbound calls: notice them, stop talking, leave a message or hang up.

Three stages share the work:

- :class:`AnsweringMachineDetector` sits right after the caller's voice stage, before the STT,
  where the caller's audio and the VAD's speech frames pass. On an outbound call (the stream's
  ``Direction`` parameter) it feeds them to
  :class:`~voiceagent.processors.machine_detection.MachineDetection` — with a
  :class:`~voiceagent.processors.beep.BeepDetector` on the audio — together with the words the
  STT heard (``CallerWordsFrame``, sent back up by :class:`MachineWords`) and Twilio's AMD result
  when the server delivers one (``AnsweredByFrame``). Each verdict goes downstream as an
  ``AnswerVerdictFrame`` (for the responder and the call's record); on a machine it first cuts
  the agent off (an interruption). Once decided it only forwards frames.
- :class:`~voiceagent.processors.machine_words.MachineWords` sits right after the STT: it sends
  the transcripts back up to the detector while it listens, holds the other party's speech from
  the turn engine while the detector decides (``AnswerPendingFrame``), lets a person's go and
  drops a machine's: the agent never answers a recorded greeting.
- :class:`VoicemailResponder` sits right before the TTS. On a machine it mutes what the
  conversation still produces (a reply in flight, a re-prompt, a playback pause), then either
  leaves the message once the greeting ended and hangs up after it was heard, or hangs up at
  once (``CallHangUp`` with ``end_reason="voicemail"``; a machine cannot barge in on it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    TextFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.frames import (
    AnsweredByFrame,
    AnswerPendingFrame,
    AnswerVerdictFrame,
    CallerWordsFrame,
    CallStartedFrame,
    PlaybackPauseFrame,
)
from voiceagent.processors.beep import BeepDetector
from voiceagent.processors.hang_up import CallHangUp
from voiceagent.processors.machine_detection import (
    AnsweringMachineParams,
    Decision,
    MachineDetection,
    Phase,
)
from voiceagent.processors.machine_words import (  # noqa: F401  (re-exported)
    DETECTION_MODES,
    OUTBOUND,
    MachineWords,
    detection_mode,
    is_machine,
)

if TYPE_CHECKING:
    from voiceagent.pipelines.builder import CallParts

VOICEMAIL_ACTIONS = ("leave_message", "hang_up")


class AnsweringMachineDetector(FrameProcessor):
    """Decides, on outbound calls, whether a machine answered; tells the stages after it."""

    def __init__(
        self,
        params: AnsweringMachineParams | None = None,
        *,
        mode: str = "agent",
        **kwargs,
    ) -> None:
        """Create the detector.

        Args:
            params: Thresholds of the agent's own detection.
            mode: ``agent`` (own detection), ``twilio`` (Twilio's AMD decides; the audio finds
                the greeting's end) or ``off``; a call's ``AnsweringMachine`` stream parameter
                overrides it.
            **kwargs: Passed to ``FrameProcessor``.
        """
        # Direct mode: every caller audio frame passes this stage (on inbound calls untouched);
        # its work per frame is a few arithmetic steps that never wait, so a queue and a task
        # hop of its own per caller frame would cost more than the stage.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(**kwargs)
        self._params = params or AnsweringMachineParams()
        self._mode = mode
        self.core: MachineDetection | None = None
        self._beep: BeepDetector | None = None
        self._at_s = 0.0
        self._machine = False
        self._holding = False
        self.call_sid = ""

    @property
    def decision(self) -> Decision | None:
        """The latest decision on this call (None while listening or when not detecting)."""
        return self.core.decisions[-1] if self.core is not None and self.core.decisions else None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Watch the callee's side of an outbound call; forward every frame unchanged."""
        await super().process_frame(frame, direction)
        core = self.core
        if isinstance(frame, CallStartedFrame):
            self._start(frame)
            await self.push_frame(frame, direction)
            if self.core is not None:
                await self._hold(self.core)  # a greeting may begin at once: hold from the start
            return
        if core is not None:
            if isinstance(frame, InputAudioRawFrame):
                if direction is FrameDirection.DOWNSTREAM:
                    await self._audio(core, frame)
            elif isinstance(frame, VADUserStartedSpeakingFrame):
                core.speech_started(self._at_s)
            elif isinstance(frame, VADUserStoppedSpeakingFrame):
                core.speech_stopped(max(0.0, self._at_s - frame.stop_secs))
            elif isinstance(frame, AnsweredByFrame):
                await self._act(core.twilio(self._at_s, frame.answered_by))
            elif isinstance(frame, CallerWordsFrame):
                await self._act(core.transcript(self._at_s, frame.text))
                await self._hold(core)
                return  # it came up for this stage only
            await self._hold(core)
        await self.push_frame(frame, direction)

    def _start(self, frame: CallStartedFrame) -> None:
        self.call_sid = frame.call_sid
        mode = detection_mode(frame, self._mode)
        if mode is None:
            return
        self.core = MachineDetection(self._params, own=mode == "agent")
        self._beep = BeepDetector(self._params.beep)
        logger.info(f"call {frame.call_sid}: outbound; listening for an answering machine ({mode})")

    async def _audio(self, core: MachineDetection, frame: InputAudioRawFrame) -> None:
        if not core.active:
            return
        rate = frame.sample_rate or 16000
        self._at_s += len(frame.audio) / (2 * rate * max(1, frame.num_channels))
        if self._beep is not None:
            beep = self._beep.feed(frame.audio, rate)
            if beep is not None:
                await self._act(core.beep(self._at_s, beep))
        await self._act(core.tick(self._at_s))

    async def _hold(self, core: MachineDetection) -> None:
        """Tell MachineWords when the other party's speech starts or stops waiting for a verdict.

        From the call's start (a greeting may begin at once) until the verdict, or until the
        time for a greeting to begin has passed in silence.
        """
        holding = self._params.hold_turns and core.holds_turns
        if holding != self._holding:
            self._holding = holding
            await self.push_frame(AnswerPendingFrame(holding=holding))

    async def _act(self, decision: Decision | None) -> None:
        if decision is None:
            return
        logger.info(
            f"call {self.call_sid or '?'}: answered by {decision.answered_by} "
            f"({decision.evidence}, at {decision.at_s:.2f} s)"
        )
        if decision.machine and not self._machine:
            self._machine = True
            # Cut off what the agent is saying first: the interruption flushes every queue,
            # and must not reach the TTS after the responder queued the message.
            await self.broadcast_interruption()
        await self.push_frame(
            AnswerVerdictFrame(
                answered_by=decision.answered_by,
                greeting_ended=decision.phase is Phase.GREETING_ENDED,
                evidence=decision.evidence,
            )
        )


class VoicemailResponder(FrameProcessor):
    """Leaves the message (or hangs up) once a machine answered; mutes the conversation.

    Verdicts of a person or of no decision pass through untouched.
    """

    def __init__(
        self,
        *,
        action: str = "leave_message",
        message: str = "",
        hang_up: Callable[[], CallHangUp | None],
        **kwargs,
    ) -> None:
        """Create the responder.

        Args:
            action: ``leave_message`` or ``hang_up``; a call's ``VoicemailAction`` stream
                parameter overrides it.
            message: What to say to the machine after its greeting.
            hang_up: The call's ``CallHangUp`` (looked up when needed: it is built later).
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._default_action = action
        self.action = action
        self._message = message
        self._hang_up = hang_up
        self.muted = False
        self.message_left = False
        self.hung_up = False
        self._call_sid = ""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Mute the conversation on a machine; leave the message or hang up; forward the rest."""
        await super().process_frame(frame, direction)
        if isinstance(frame, CallStartedFrame):
            self._call_sid = frame.call_sid
            action = frame.custom_parameters.get("VoicemailAction", self._default_action)
            if action not in VOICEMAIL_ACTIONS:
                logger.warning(f"call {frame.call_sid}: unknown VoicemailAction={action!r}")
                action = self._default_action
            self.action = action
        elif isinstance(frame, AnswerVerdictFrame):
            await self.push_frame(frame, direction)
            if is_machine(frame.answered_by):
                self.muted = True
                await self._respond(frame)
            return
        elif (
            self.muted
            and direction is FrameDirection.DOWNSTREAM
            and isinstance(frame, TextFrame | TTSSpeakFrame | PlaybackPauseFrame)
        ):
            return  # the conversation's words are not for the machine
        await self.push_frame(frame, direction)

    async def _respond(self, frame: AnswerVerdictFrame) -> None:
        if self.hung_up:
            return
        hang_up = self._hang_up()
        leave = self.action == "leave_message" and frame.answered_by != "fax"
        if leave and not frame.greeting_ended:
            return  # wait for the beep or the greeting's end
        if hang_up is None:
            logger.warning(f"call {self._call_sid or '?'}: answering machine, but no hang-up stage")
            return
        if leave and self._message:
            await self.push_frame(TTSSpeakFrame(self._message))
            self.message_left = True
            reason = "left a voicemail message"
        else:
            reason = f"answering machine ({frame.answered_by})"
        self.hung_up = await hang_up.request(
            reason, end_reason="voicemail", cue_via=self, withdrawable=False
        )


def answering_machine_detector(parts: CallParts) -> FrameProcessor | None:
    """The ``answering_machine`` stage (left out when ``telephony.machine_detection`` is off)."""
    telephony = parts.settings.telephony
    if telephony.machine_detection == "off":
        return None
    return AnsweringMachineDetector(telephony.answering_machine, mode=telephony.machine_detection)


def machine_words(parts: CallParts) -> FrameProcessor | None:
    """The ``machine_words`` stage (left out when ``telephony.machine_detection`` is off)."""
    telephony = parts.settings.telephony
    if telephony.machine_detection == "off":
        return None
    return MachineWords(mode=telephony.machine_detection, clock=parts.clock)


def voicemail_responder(parts: CallParts) -> FrameProcessor | None:
    """The ``voicemail`` stage; its hang-up is the call's ``hang_up`` stage."""
    telephony = parts.settings.telephony
    if telephony.machine_detection == "off":
        return None

    def hang_up() -> CallHangUp | None:
        stage = parts.processors.get("hang_up")
        return stage if isinstance(stage, CallHangUp) else None

    return VoicemailResponder(
        action=telephony.voicemail_action, message=telephony.voicemail_message, hang_up=hang_up
    )
