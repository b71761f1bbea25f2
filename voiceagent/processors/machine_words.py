"""The callee's side after the STT on an outbound call: words up to the detector, speech held.

:class:`MachineWords` sits right after the STT (the answering machine detector sits before it,
where the caller's audio still flows; see :mod:`voiceagent.processors.voicemail`). While the
detector listens it sends the transcripts back up to it (``CallerWordsFrame``). While the other
party's first words may be a machine's greeting (the detector's ``AnswerPendingFrame``) it holds
their speech — VAD, sound, transcripts, end of turn — from the turn engine: on a person's (or no)
verdict it lets it go, its times (``start_secs``, ``stop_secs``, ``since_s``) aged by the wait so
the turn engine judges the speech as it happened; on a machine's it drops it, and keeps all of
the machine from the turn engine from then on. The agent never answers a recorded greeting.
"""

from __future__ import annotations

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.frames import (
    AnswerPendingFrame,
    AnswerVerdictFrame,
    CallerSoundFrame,
    CallerWordsFrame,
    CallStartedFrame,
    EndOfTurnFrame,
)

OUTBOUND = "outbound-api"
DETECTION_MODES = ("agent", "twilio", "off")
_CALLER_SIDE = (
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    CallerSoundFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    EndOfTurnFrame,
)


def detection_mode(frame: CallStartedFrame, default: str) -> str | None:
    """How this call is checked for machines (``agent``/``twilio``), or None: not at all."""
    params = frame.custom_parameters
    mode = params.get("AnsweringMachine", default)
    if mode not in DETECTION_MODES:
        logger.warning(f"call {frame.call_sid}: unknown AnsweringMachine={mode!r}; using agent")
        mode = "agent"
    if params.get("Direction") != OUTBOUND or mode == "off":
        return None
    return mode


def is_machine(answered_by: str) -> bool:
    """A machine (or a fax) answered, in Twilio's words."""
    return answered_by.startswith("machine") or answered_by == "fax"


class MachineWords(FrameProcessor):
    """After the STT: words go up to the detector; speech that may be a machine's is held."""

    def __init__(self, *, mode: str = "agent", clock: Clock = DEFAULT_CLOCK, **kwargs) -> None:
        """Create the stage (``mode`` as the detector's; ``clock`` times how long speech waited)."""
        super().__init__(**kwargs)
        self._mode = mode
        self._clock = clock
        self._listening = False
        self.machine = False
        self._holding = False
        self.held: list[tuple[float, Frame]] = []
        """Caller-side frames waiting for the verdict, with when they arrived."""
        self.released = 0
        """Caller-side frames let go to the turn engine after waiting (a person's first words)."""
        self._speaking = False
        self._sounding = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Relay transcripts while listening; hold or drop the caller-side frames."""
        await super().process_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, CallStartedFrame):
            self._listening = detection_mode(frame, self._mode) is not None
        elif isinstance(frame, AnswerPendingFrame):
            if frame.holding and self._listening:
                self._holding = True
            elif not frame.holding:
                await self._release()
            return  # for this stage only
        elif isinstance(frame, AnswerVerdictFrame):
            await self._verdict(frame)
        elif isinstance(frame, _CALLER_SIDE):
            if self.machine:
                return  # a recorded greeting is not a caller turn
            if isinstance(frame, InterimTranscriptionFrame | TranscriptionFrame):
                await self._words_up(frame)
                if self.machine:
                    return  # these very words gave the machine away (a direct-mode verdict)
            if self._holding:
                self.held.append((self._clock.now(), frame))
                return
            self._track(frame)
        await self.push_frame(frame, direction)

    async def _words_up(self, frame: InterimTranscriptionFrame | TranscriptionFrame) -> None:
        if self._listening and isinstance(frame.text, str) and frame.text:
            final = isinstance(frame, TranscriptionFrame)
            await self.push_frame(
                CallerWordsFrame(text=frame.text, final=final), FrameDirection.UPSTREAM
            )

    def _track(self, frame: Frame) -> None:
        """Whether the turn engine believes the caller is speaking / their line is loud."""
        if isinstance(frame, VADUserStartedSpeakingFrame | VADUserStoppedSpeakingFrame):
            self._speaking = isinstance(frame, VADUserStartedSpeakingFrame)
        elif isinstance(frame, CallerSoundFrame):
            self._sounding = frame.sounding

    async def _release(self) -> None:
        """Let the held speech go on, its times aged by the wait (it is not happening now)."""
        self._holding = False
        held, self.held = self.held, []
        now = self._clock.now()
        for arrived, frame in held:
            age = max(0.0, now - arrived)
            if isinstance(frame, VADUserStartedSpeakingFrame):
                frame.start_secs += age
            elif isinstance(frame, VADUserStoppedSpeakingFrame):
                frame.stop_secs += age
            elif isinstance(frame, CallerSoundFrame):
                frame.since_s += age
            self._track(frame)
            self.released += 1
            await self.push_frame(frame)

    async def _verdict(self, frame: AnswerVerdictFrame) -> None:
        self._listening = False
        if not is_machine(frame.answered_by):
            await self._release()
            return
        if self.machine:
            return
        self.machine = True
        self._holding = False
        self.held.clear()
        # The turn engine heard the machine start: tell it the line went quiet.
        if self._speaking:
            await self.push_frame(VADUserStoppedSpeakingFrame())
        if self._sounding:
            await self.push_frame(CallerSoundFrame(sounding=False))
