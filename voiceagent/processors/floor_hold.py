"""The agent does not start a turn while the caller is making a sound (placed before the output).

A reply committed at a pause can be ready just as the caller resumes ("next Tuesday, | maybe
in the afternoon"). The router cancels such a reply once the VAD reports the caller again, but
that is ≈ 300 ms after their first sound: long enough for the agent to start talking over them.
``FloorHold`` sits right before TwilioOutput and, while the agent is silent, holds the frames
of a new agent turn for as long as ``CallerSoundFrame`` says the caller's line is loud (at most
``max_hold_s``). When the sound ends the held frames go on in order; when it was the caller
resuming, the router's cancellation (an ``InterruptionFrame``) drops them unheard.

Only the *start* of a turn waits: once agent audio has passed, the turn plays (talking over
the agent is the barge-in gate's business).
"""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    SystemFrame,
    TextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock, Deadline
from voiceagent.frames import CallerSoundFrame, PlaybackFenceFrame

_AGENT_SPEECH = (
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TextFrame,
    LLMFullResponseStartFrame,
    LLMFullResponseEndFrame,
    PlaybackFenceFrame,
)
"""What a held turn is made of (kept in order; a playback fence keeps its place behind it);
other frames pass by."""


class FloorHold(FrameProcessor):
    """Holds a new agent turn while the caller's line is loud; forwards everything else."""

    def __init__(self, *, max_hold_s: float = 1.0, clock: Clock = DEFAULT_CLOCK, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_hold_s = max_hold_s
        self._clock = clock
        self._sounding = False
        self._in_turn = False  # agent audio of the current turn has passed
        self._held: list[Frame] = []
        self._deadline = Deadline(clock, self._on_deadline)
        self._lock = asyncio.Lock()  # a timed release and live frames must not interleave
        self.holds = 0
        self.held_s_total = 0.0
        self._held_since: float | None = None

    @property
    def holding(self) -> bool:
        """Whether frames are being held."""
        return bool(self._held)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Hold the start of an agent turn while the caller sounds; release when quiet."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.UPSTREAM:
            if isinstance(frame, BotStoppedSpeakingFrame):
                self._in_turn = False
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, CallerSoundFrame):
            self._sounding = frame.sounding
            await self.push_frame(frame, direction)
            if not frame.sounding:
                await self._release()
            return
        if isinstance(frame, InterruptionFrame | CancelFrame):
            self._drop()
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, SystemFrame):
            await self.push_frame(frame, direction)
            return
        async with self._lock:
            if isinstance(frame, EndFrame):
                await self._release_locked()
            elif (self._held and isinstance(frame, _AGENT_SPEECH)) or (
                self._sounding and not self._in_turn and isinstance(frame, TTSAudioRawFrame)
            ):
                self._hold(frame)
                return
            elif isinstance(frame, TTSAudioRawFrame):
                self._in_turn = True
            await self.push_frame(frame, direction)

    def _hold(self, frame: Frame) -> None:
        if not self._held:
            self.holds += 1
            self._held_since = self._clock.now()
            self._deadline.set(self._held_since + self.max_hold_s)
        self._held.append(frame)

    async def _release(self) -> None:
        async with self._lock:
            await self._release_locked()

    async def _release_locked(self) -> None:
        held, self._held = self._held, []
        self._deadline.cancel()
        if not held:
            return
        if self._held_since is not None:
            self.held_s_total += self._clock.now() - self._held_since
            self._held_since = None
        for frame in held:
            if isinstance(frame, TTSAudioRawFrame):
                self._in_turn = True
            await self.push_frame(frame)

    def _drop(self) -> None:
        self._held.clear()
        self._held_since = None
        self._deadline.cancel()
        self._in_turn = False

    def _on_deadline(self) -> None:
        if self._held:
            self.create_task(self._release(), name=f"{self}::max_hold")

    async def cleanup(self) -> None:
        """Cancel the pending deadline."""
        self._deadline.cancel()
        await super().cleanup()
