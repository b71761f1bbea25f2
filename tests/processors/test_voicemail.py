"""The answering machine stages in a chain: the detector's verdicts, the responder's actions.

``detector → (the STT's place) → MachineWords → (the turn engine's place) → responder``, in
pipecat's direct mode; the caller's audio is fed as 20 ms frames, so the detector's clock is
the audio itself; words enter where the STT would push them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from pipecat.clocks.system_clock import SystemClock
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMTextFrame,
    StartFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup
from pipecat.utils.asyncio.task_manager import TaskManager

from voiceagent.clock import ManualClock
from voiceagent.frames import (
    AnsweredByFrame,
    AnswerPendingFrame,
    AnswerVerdictFrame,
    CallerSoundFrame,
    CallerWordsFrame,
    CallStartedFrame,
    PlaybackPauseFrame,
)
from voiceagent.processors.machine_detection import AnsweringMachineParams
from voiceagent.processors.voicemail import (
    AnsweringMachineDetector,
    MachineWords,
    VoicemailResponder,
)

RATE = 16000
DOWN, UP = FrameDirection.DOWNSTREAM, FrameDirection.UPSTREAM
MESSAGE = "Hello, this is Bright Smile Dental, please call us back."


class Recorder(FrameProcessor):
    def __init__(self) -> None:
        super().__init__(enable_direct_mode=True)
        self.frames: list[tuple[Frame, FrameDirection]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, StartFrame | EndFrame):
            self.frames.append((frame, direction))
        await self.push_frame(frame, direction)


@dataclass
class HangUpStub:
    """Stands in for ``CallHangUp``: records the requests."""

    requests: list[tuple[str, dict]] = field(default_factory=list)

    async def request(self, reason: str, **options) -> bool:
        self.requests.append((reason, options))
        return True


class Line:
    """An outbound call's first seconds through the two stages."""

    def __init__(
        self, *, action: str = "leave_message", mode: str = "agent", hold_turns: bool = True
    ) -> None:
        self.hang_up = HangUpStub()
        self.clock = ManualClock()
        self.top = Recorder()
        params = AnsweringMachineParams(hold_turns=hold_turns)
        self.detector = AnsweringMachineDetector(params, mode=mode, enable_direct_mode=True)
        self.stt = Recorder()
        self.words = MachineWords(mode=mode, clock=self.clock, enable_direct_mode=True)
        self.middle = Recorder()  # where the turn engine sits
        self.responder = VoicemailResponder(
            action=action, message=MESSAGE, hang_up=lambda: self.hang_up, enable_direct_mode=True
        )
        self.bottom = Recorder()
        self.chain = [
            self.top,
            self.detector,
            self.stt,
            self.words,
            self.middle,
            self.responder,
            self.bottom,
        ]
        for a, b in zip(self.chain, self.chain[1:], strict=False):
            a.link(b)

    async def __aenter__(self) -> Line:
        setup = FrameProcessorSetup(
            clock=SystemClock(), task_manager=TaskManager(), pipeline_worker=None
        )
        for processor in self.chain:
            await processor.setup(setup)
        await self.top.queue_frame(StartFrame())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for processor in self.chain:
            await processor.cleanup()

    async def send(self, frame: Frame) -> None:
        await self.top.queue_frame(frame)

    async def heard(self, text: str) -> None:
        """The STT's transcript of what the callee said."""
        await self.stt.queue_frame(TranscriptionFrame(text, "callee", ""))

    async def answered(self, direction: str = "outbound-api", **params: str) -> None:
        parameters = {"Direction": direction, **params}
        await self.send(CallStartedFrame(call_sid="CA1", custom_parameters=parameters))

    async def audio(self, seconds: float, hz: float | None = None) -> None:
        for _ in range(round(seconds / 0.02)):
            if hz is None:
                pcm = bytes(2 * RATE // 50)
            else:
                t = np.arange(RATE // 50) / RATE
                pcm = (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()
            await self.send(InputAudioRawFrame(pcm, RATE, 1))

    def below(self, cls: type) -> list:
        return [f for f, d in self.bottom.frames if isinstance(f, cls) and d is DOWN]

    def reached_conversation(self, cls: type) -> list:
        return [f for f, d in self.middle.frames if isinstance(f, cls) and d is DOWN]


async def test_a_machine_greeting_mutes_the_conversation_and_the_message_follows_the_beep():
    async with Line() as line:
        await line.answered()
        await line.audio(0.3)
        await line.send(CallerSoundFrame(sounding=True))  # the line turns loud first
        await line.send(VADUserStartedSpeakingFrame())
        await line.audio(0.6)
        await line.heard("Hi, leave a message after the tone")
        # The words went up to the detector: a machine. The agent is cut off (both ways).
        words = [f for f, d in line.stt.frames if isinstance(f, CallerWordsFrame)]
        assert [(w.text, w.final) for w in words] == [("Hi, leave a message after the tone", True)]
        assert [v.answered_by for v in line.below(AnswerVerdictFrame)] == ["machine_start"]
        assert line.below(InterruptionFrame)
        assert any(isinstance(f, InterruptionFrame) and d is UP for f, d in line.top.frames)
        # Of the greeting (held while the detector listened, then dropped) the turn engine
        # heard nothing: no sound, no speech, no words, no turn.
        assert not line.reached_conversation(CallerSoundFrame)
        assert not line.reached_conversation(VADUserStartedSpeakingFrame)
        assert not line.reached_conversation(TranscriptionFrame)
        assert not line.reached_conversation(AnswerPendingFrame)  # between the two stages
        assert line.words.held == [] and line.words.released == 0
        before = len(line.middle.frames)
        await line.heard("after the tone")
        await line.send(VADUserStartedSpeakingFrame())
        assert len(line.middle.frames) == before
        # Nothing the conversation still produces reaches the machine.
        await line.middle.queue_frame(TTSSpeakFrame("Are you still there?"))  # a re-prompt
        await line.middle.queue_frame(LLMTextFrame("Sure, "))  # a reply already in flight
        await line.middle.queue_frame(PlaybackPauseFrame())
        assert not line.below(TTSSpeakFrame) and not line.below(LLMTextFrame)
        assert not line.below(PlaybackPauseFrame)
        assert line.hang_up.requests == []
        await line.audio(1.4)
        await line.send(VADUserStoppedSpeakingFrame())
        await line.audio(0.4)
        await line.audio(0.5, hz=1000.0)  # the beep
        await line.audio(0.1)
        # The greeting is over: the message, then the hang-up once it has been heard.
        assert [v.answered_by for v in line.below(AnswerVerdictFrame)][-1] == "machine_end_beep"
        assert [f.text for f in line.below(TTSSpeakFrame)] == [MESSAGE]
        [(reason, options)] = line.hang_up.requests
        assert reason == "left a voicemail message"
        assert options == {
            "end_reason": "voicemail",
            "cue_via": line.responder,
            "withdrawable": False,
        }


async def test_hang_up_action_ends_the_call_as_soon_as_a_machine_is_known():
    async with Line(action="hang_up") as line:
        await line.answered()
        await line.audio(0.2)
        await line.heard("You have reached voicemail")
        assert line.below(TTSSpeakFrame) == []
        [(reason, options)] = line.hang_up.requests
        assert reason == "answering machine (machine_start)"
        assert options["end_reason"] == "voicemail"


async def test_a_person_is_recorded_and_left_alone():
    async with Line() as line:
        await line.answered()
        await line.audio(0.5)
        await line.send(VADUserStartedSpeakingFrame())
        await line.audio(0.5)
        await line.heard("Hello?")
        await line.send(VADUserStoppedSpeakingFrame())
        await line.audio(1.5)
        assert [(v.answered_by, v.evidence) for v in line.below(AnswerVerdictFrame)] == [
            ("human", "short_first_utterance")
        ]
        assert line.reached_conversation(TranscriptionFrame)  # a turn like any other
        await line.heard("Who is this?")  # no longer sent up: the detector is done
        assert len([f for f, d in line.stt.frames if isinstance(f, CallerWordsFrame)]) == 1
        await line.middle.queue_frame(LLMTextFrame("Hi, "))
        assert line.below(LLMTextFrame) and not line.hang_up.requests
        assert not line.detector.core.active  # nothing more to do per frame


async def test_a_persons_first_words_wait_for_the_verdict_and_keep_their_times():
    """A "Hello?" right at the answer could be a recording's first word: the turn engine gets
    it once the detector knows it was a person's, aged by the wait."""
    async with Line() as line:
        await line.answered()
        await line.audio(0.5)
        await line.send(CallerSoundFrame(sounding=True, since_s=0.1))
        await line.send(VADUserStartedSpeakingFrame(start_secs=0.2))
        line.clock.advance(0.5)
        await line.audio(0.5)
        await line.heard("Hello?")
        await line.send(CallerSoundFrame(sounding=False))
        await line.send(VADUserStoppedSpeakingFrame(stop_secs=0.3))
        line.clock.advance(0.8)
        await line.audio(0.8)  # the pause is not yet long enough to tell
        assert not line.below(AnswerVerdictFrame)
        assert not line.reached_conversation(CallerSoundFrame)
        assert not line.reached_conversation(VADUserStartedSpeakingFrame)
        assert not line.reached_conversation(TranscriptionFrame)
        assert len(line.words.held) == 5
        line.clock.advance(0.2)
        await line.audio(0.2)  # 1.2 s of quiet: a person
        assert [v.evidence for v in line.below(AnswerVerdictFrame)] == ["short_first_utterance"]
        kinds = [
            type(f).__name__
            for f, d in line.middle.frames
            if d is DOWN and not isinstance(f, InputAudioRawFrame | CallStartedFrame)
        ]
        assert kinds == [
            "CallerSoundFrame",
            "VADUserStartedSpeakingFrame",
            "TranscriptionFrame",
            "CallerSoundFrame",
            "VADUserStoppedSpeakingFrame",
            "AnswerVerdictFrame",
        ]
        # Each as long ago as it really happened: the turn engine times the speech right.
        sound_on, sound_off = line.reached_conversation(CallerSoundFrame)
        [started] = line.reached_conversation(VADUserStartedSpeakingFrame)
        [stopped] = line.reached_conversation(VADUserStoppedSpeakingFrame)
        assert sound_on.since_s == pytest.approx(0.1 + 1.5)
        assert started.start_secs == pytest.approx(0.2 + 1.5)
        assert sound_off.since_s == pytest.approx(1.0)
        assert stopped.stop_secs == pytest.approx(0.3 + 1.0)
        assert line.words.released == 5 and line.words.held == []
        await line.heard("Who is this?")  # after the verdict: at once
        assert [f.text for f in line.reached_conversation(TranscriptionFrame)][-1] == (
            "Who is this?"
        )


async def test_words_said_after_the_agents_greeting_are_not_held():
    async with Line() as line:
        await line.answered()
        await line.audio(4.0)  # listening to the agent's greeting
        await line.send(VADUserStartedSpeakingFrame())
        await line.heard("Yes, speaking.")
        assert line.reached_conversation(VADUserStartedSpeakingFrame)
        assert line.reached_conversation(TranscriptionFrame) and line.words.held == []


async def test_holding_can_be_turned_off():
    """Then the greeting's start reaches the turn engine, and the verdict tells it the line went
    quiet (its reply, if any, is muted by the responder)."""
    async with Line(hold_turns=False) as line:
        await line.answered()
        await line.audio(0.3)
        await line.send(CallerSoundFrame(sounding=True))
        await line.send(VADUserStartedSpeakingFrame())
        await line.audio(0.3)
        await line.heard("Hi, this is Sam")
        assert line.reached_conversation(VADUserStartedSpeakingFrame)
        assert line.reached_conversation(TranscriptionFrame)
        assert not line.reached_conversation(AnswerPendingFrame)
        await line.heard("please leave a message")
        assert [v.answered_by for v in line.below(AnswerVerdictFrame)] == ["machine_start"]
        assert len(line.reached_conversation(VADUserStoppedSpeakingFrame)) == 1  # ours
        assert [f.sounding for f in line.reached_conversation(CallerSoundFrame)] == [True, False]


@pytest.mark.parametrize("direction", ["inbound", ""])
async def test_inbound_calls_are_not_checked_for_machines(direction: str):
    async with Line() as line:
        await line.answered(direction=direction)
        await line.audio(0.2)
        await line.heard("Please leave a message")
        await line.audio(0.5, hz=1000.0)
        assert line.detector.core is None and not line.below(AnswerVerdictFrame)
        assert not [f for f, d in line.stt.frames if isinstance(f, CallerWordsFrame)]
        assert line.reached_conversation(TranscriptionFrame)


async def test_twilio_amd_decides_when_the_call_uses_it():
    async with Line(mode="agent") as line:
        await line.answered(AnsweringMachine="twilio", VoicemailAction="hang_up")
        await line.heard("Please leave a message")
        assert not line.below(AnswerVerdictFrame)  # the wording is Twilio's job here
        await line.send(AnsweredByFrame(answered_by="machine_start"))
        assert [(v.answered_by, v.evidence) for v in line.below(AnswerVerdictFrame)] == [
            ("machine_start", "twilio_amd")
        ]
        assert line.responder.action == "hang_up" and len(line.hang_up.requests) == 1
