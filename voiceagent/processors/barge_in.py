"""BargeInGate: caller speech interrupts the agent only when it means to.

Sits between STT and the StabilityCommitRouter. While the agent is speaking (between
``BotStartedSpeakingFrame`` and ``BotStoppedSpeakingFrame``, pushed from real playback by
TwilioOutput) the caller's transcripts are held back from the router; when the held speech
proves an interruption (see ``InterruptionPolicy``) the gate broadcasts an ``InterruptionFrame``
both ways (LLM cancels, queued TTS is dropped, TwilioOutput sends ``clear``) and forwards what it
held, so the router sees the words. Backchannels and echo never reach the router as a turn.
VAD frames always pass. While the agent is silent everything passes untouched.

A false interruption (no words follow within ``resume_timeout_s``) resumes the agent: the
unheard remainder from TwilioOutput's ``AgentHeardFrame`` is spoken again as a ``TTSSpeakFrame``.
"""

from __future__ import annotations

import asyncio

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock, Deadline
from voiceagent.frames import AgentHeardFrame, CallEndedFrame, CallerSoundFrame
from voiceagent.processors.interruption_policy import (
    BargeInParams,
    BargeInStats,
    GateAction,
    InterruptionPolicy,
)

__all__ = ["BargeInGate", "BargeInParams", "BargeInStats"]

_Transcript = InterimTranscriptionFrame | TranscriptionFrame


MAX_SOUND_LEAD_S = 0.8
"""An energy onset longer ago than this before the VAD start is another sound (noise)."""


class BargeInGate(FrameProcessor):
    """Decides whether caller speech over the agent is a barge-in; holds back what is not."""

    def __init__(
        self,
        *,
        params: BargeInParams | None = None,
        clock: Clock = DEFAULT_CLOCK,
        **kwargs,
    ) -> None:
        """Create the gate.

        Args:
            params: Thresholds (speech duration, words, echo guard, resume).
            clock: Time source for speech durations and deadlines.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._clock = clock
        self._policy = InterruptionPolicy(params)
        self._join_gap_s = self._policy.params.join_gap_s
        self._caller_stopped_at: float | None = None
        self._sound_since: float | None = None  # the caller's line turned loud (energy onset)
        self._held: list[_Transcript] = []
        self._deadline = Deadline(clock, self._on_deadline)
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    @property
    def params(self) -> BargeInParams:
        """The gate's thresholds."""
        return self._policy.params

    @property
    def stats(self) -> BargeInStats:
        """Counters: interruptions, ignored backchannels/echo, false interruptions, resumes."""
        return self._policy.stats

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Gate the caller's transcripts; track agent/caller speech; forward everything else."""
        await super().process_frame(frame, direction)
        now = self._clock.now()
        policy = self._policy
        if isinstance(frame, (InterimTranscriptionFrame, TranscriptionFrame)) and (
            direction is FrameDirection.DOWNSTREAM
        ):
            final = isinstance(frame, TranscriptionFrame)
            await self._act(policy.on_transcript(frame.text or "", final=final, now=now), frame)
            self._reschedule()
            return

        action = GateAction.NONE
        if isinstance(frame, CallerSoundFrame):
            self._sound_since = now if frame.sounding else None
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            start_secs = self._speech_lead(frame.start_secs, now)
            resumed = (
                self._caller_stopped_at is not None
                and now - start_secs - self._caller_stopped_at <= self._join_gap_s
            )
            if not policy.caller_speaking and not resumed:
                self._held.clear()  # a new utterance: the previous one's held words are moot
            policy.on_caller_started(now, start_secs)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._caller_stopped_at = now - frame.stop_secs  # when the speech really ended
            policy.on_caller_stopped(now, frame.stop_secs)
        elif isinstance(frame, BotStartedSpeakingFrame):
            policy.on_agent_started(now)
        elif isinstance(frame, BotStoppedSpeakingFrame):
            action = policy.on_agent_stopped(now)
        elif isinstance(frame, AgentHeardFrame):
            action = policy.on_agent_heard(
                interrupted=frame.interrupted, unheard_text=frame.unheard_text, now=now
            )
        elif isinstance(frame, (EndFrame, CancelFrame, CallEndedFrame)):
            self._close()
        await self.push_frame(frame, direction)
        await self._act(action, None)
        self._reschedule()

    def _speech_lead(self, start_secs: float, now: float) -> float:
        """How long ago the speech the VAD just confirmed began.

        The VAD reports ``start_secs`` of speech, but its volume ramp makes it later still
        (≈ 300 ms after the first sound); the energy onset of the same sound, when there is
        one, is the better start for the minimum-duration rule.
        """
        since = self._sound_since
        if since is None:
            return start_secs
        lead = now - since
        return lead if start_secs < lead <= MAX_SOUND_LEAD_S else start_secs

    async def cleanup(self) -> None:
        """Cancel the pending deadline and any deadline task."""
        self._close()
        for task in list(self._tasks):
            await self.cancel_task(task)
        await super().cleanup()

    # -- actions -----------------------------------------------------------------------------

    async def _act(self, action: GateAction, frame: _Transcript | None) -> None:
        if action is GateAction.NONE:
            return
        if action is GateAction.FORWARD:
            if frame is not None:
                await self.push_frame(frame)
        elif action is GateAction.HOLD:
            if frame is not None:
                self._hold(frame)
        elif action is GateAction.DROP:
            logger.trace(f"{self}: dropped caller transcript during agent speech")
        elif action is GateAction.INTERRUPT:
            if frame is not None:
                self._hold(frame)
            logger.debug(f"{self}: barge-in, interrupting the agent ({self.stats.interruptions})")
            await self.broadcast_interruption()
            await self._flush_held()
        elif action is GateAction.RELEASE:
            await self._flush_held()
        elif action is GateAction.DISCARD:
            self._held.clear()
        elif action is GateAction.RESUME:
            text = self._policy.take_resume_text()
            logger.info(f"{self}: false interruption, resuming the agent: {text!r}")
            await self.push_frame(TTSSpeakFrame(text=text))

    def _hold(self, frame: _Transcript) -> None:
        """Keep finals in order plus the latest partial after them (a partial is superseded)."""
        if self._held and isinstance(self._held[-1], InterimTranscriptionFrame):
            self._held[-1] = frame
        else:
            self._held.append(frame)

    async def _flush_held(self) -> None:
        held, self._held = self._held, []
        for frame in held:
            await self.push_frame(frame)

    # -- deadlines ---------------------------------------------------------------------------

    def _reschedule(self) -> None:
        self._deadline.set(None if self._closed else self._policy.next_deadline())

    def _on_deadline(self) -> None:
        if self._closed:
            return
        task = self.create_task(self._tick(self._clock.now()), "barge_in_deadline")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tick(self, now: float) -> None:
        await self._act(self._policy.tick(now), None)
        self._reschedule()

    def _close(self) -> None:
        self._closed = True
        self._deadline.cancel()
