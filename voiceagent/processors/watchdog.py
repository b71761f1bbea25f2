"""SilenceWatchdog: never leave the call silent with no one speaking.

Sits after the StabilityCommitRouter, before the LLM. Two timers on the call's clock:

- **reply**: after a ``UserTurnCommittedFrame``, if the agent has not started speaking within
  ``reply_timeout_s`` (and the caller is not speaking), the generation probably failed or
  stalled. Cancel it (``InterruptionFrame`` downstream only: LLM, hold, aggregator, TTS, output)
  and re-run the LLM once on the call's context; if that also yields no speech, speak
  ``fallback_text``. An ``ErrorFrame`` coming up from below shortens the wait to
  ``error_grace_s``.
- **idle**: when nobody has spoken for ``idle_timeout_s`` after the agent finished speaking,
  speak ``reprompt_text``; at most ``max_reprompts`` times until the caller speaks again.

Any caller speech (VAD, transcripts) or agent speech (``BotStartedSpeakingFrame``) resets them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pydantic import BaseModel, Field

from voiceagent.clock import DEFAULT_CLOCK, Clock, TimerHandle
from voiceagent.frames import CallEndedFrame, UserTurnCommittedFrame
from voiceagent.processors.agent_context import CallContext


class WatchdogParams(BaseModel):
    """Timeouts and lines of the silence watchdog.

    Attributes:
        reply_timeout_s: Wait this long after a committed turn for the agent to start speaking.
        error_grace_s: After an error from below while waiting, act this soon instead.
        rerun_llm: Re-run the LLM once before speaking the fallback line.
        fallback_text: Spoken when no reply came (even after the re-run).
        idle_timeout_s: Silence after the agent finished speaking before a re-prompt.
        max_reprompts: Re-prompts in a row without caller speech; then stay quiet.
        reprompt_text: The re-prompt.
    """

    reply_timeout_s: float = Field(default=6.0, gt=0.0)
    error_grace_s: float = Field(default=0.5, ge=0.0)
    rerun_llm: bool = True
    fallback_text: str = "Sorry, I didn't catch that\u2014could you say it again?"
    idle_timeout_s: float = Field(default=10.0, gt=0.0)
    max_reprompts: int = Field(default=2, ge=0)
    reprompt_text: str = "Are you still there?"


@dataclass
class WatchdogStats:
    """Counters of one call's watchdog actions."""

    reruns: int = 0
    fallbacks: int = 0
    reprompts: int = 0


class SilenceWatchdog(FrameProcessor):
    """Re-runs a stalled reply, speaks a fallback, re-prompts a silent caller."""

    def __init__(
        self,
        context: CallContext,
        *,
        params: WatchdogParams | None = None,
        clock: Clock = DEFAULT_CLOCK,
        **kwargs,
    ) -> None:
        """Create the watchdog.

        Args:
            context: The call's conversation (the re-run's LLM request is built from it).
            params: Timeouts, limits and lines.
            clock: Time source for the timers.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._context = context
        self._params = params or WatchdogParams()
        self._clock = clock
        self.stats = WatchdogStats()
        self._caller_speaking = False
        self._agent_speaking = False
        self._agent_has_spoken = False
        self._awaiting_turn: int | None = None  # committed turn with no agent speech yet
        self._attempt = 0  # 0: original generation, 1: re-run pushed, 2: fallback spoken
        self._reprompts = 0
        self._reply_timer: TimerHandle | None = None
        self._reply_at: float | None = None
        self._idle_timer: TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    @property
    def params(self) -> WatchdogParams:
        """The watchdog's timeouts, limits and lines."""
        return self._params

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Track who is speaking and committed turns; forward every frame."""
        await super().process_frame(frame, direction)
        if isinstance(frame, UserTurnCommittedFrame):
            self._on_turn_committed(frame.turn_id)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._caller_speaking = True
            self._cancel_reply_timer()
            self._cancel_idle_timer()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._caller_speaking = False
            self._arm()
        elif isinstance(frame, (InterimTranscriptionFrame, TranscriptionFrame)):
            if frame.text and frame.text.strip():
                self._reprompts = 0  # the caller is there
                self._arm_idle(restart=True)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._on_agent_started()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            if self._agent_speaking:
                self._agent_speaking = False
                self._agent_has_spoken = True
                self._arm()
        elif isinstance(frame, ErrorFrame) and direction is FrameDirection.UPSTREAM:
            self._on_error()
        elif isinstance(frame, (EndFrame, CancelFrame, CallEndedFrame)):
            self._close()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Cancel timers and pending actions."""
        self._close()
        for task in list(self._tasks):
            await self.cancel_task(task)
        await super().cleanup()

    # -- state -------------------------------------------------------------------------------

    def _on_turn_committed(self, turn_id: int) -> None:
        self._awaiting_turn = turn_id
        self._attempt = 0
        self._reprompts = 0
        self._cancel_idle_timer()
        self._cancel_reply_timer()
        self._arm()

    def _on_agent_started(self) -> None:
        self._agent_speaking = True
        self._awaiting_turn = None
        self._cancel_reply_timer()
        self._cancel_idle_timer()

    def _on_error(self) -> None:
        if self._awaiting_turn is None or self._reply_at is None:
            return
        sooner = self._clock.now() + self._params.error_grace_s
        if sooner < self._reply_at:
            self._cancel_reply_timer()
            self._arm_reply(self._params.error_grace_s)

    def _arm(self) -> None:
        """Start whichever timer applies now that nobody is speaking."""
        if self._closed or self._caller_speaking or self._agent_speaking:
            return
        if self._awaiting_turn is not None:
            if self._reply_timer is None:
                self._arm_reply(self._params.reply_timeout_s)
        else:
            self._arm_idle(restart=False)

    def _arm_reply(self, delay: float) -> None:
        self._reply_at = self._clock.now() + delay
        self._reply_timer = self._clock.call_later(delay, self._fire(self._on_reply_timeout))

    def _arm_idle(self, *, restart: bool) -> None:
        if (
            self._closed
            or self._caller_speaking
            or self._agent_speaking
            or self._awaiting_turn is not None
            or not self._agent_has_spoken
        ):
            return
        if self._idle_timer is not None:
            if not restart:
                return
            self._cancel_idle_timer()
        self._idle_timer = self._clock.call_later(
            self._params.idle_timeout_s, self._fire(self._on_idle_timeout)
        )

    def _cancel_reply_timer(self) -> None:
        if self._reply_timer is not None:
            self._reply_timer.cancel()
        self._reply_timer = None
        self._reply_at = None

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = None

    def _close(self) -> None:
        self._closed = True
        self._cancel_reply_timer()
        self._cancel_idle_timer()

    def _fire(self, action: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
        """A timer callback that runs ``action`` (a coroutine function) as a task."""

        def callback() -> None:
            if self._closed:
                return
            task = self.create_task(action(), "watchdog_timeout")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return callback

    # -- timeouts ----------------------------------------------------------------------------

    async def _on_reply_timeout(self) -> None:
        self._reply_timer = None
        self._reply_at = None
        turn = self._awaiting_turn
        if turn is None or self._caller_speaking or self._agent_speaking or self._closed:
            return
        if self._attempt == 0 and self._params.rerun_llm:
            self._attempt = 1
            self.stats.reruns += 1
            logger.warning(
                f"{self}: no agent speech {self._params.reply_timeout_s:.1f}s after turn {turn}; "
                "re-running the LLM"
            )
            await self.push_frame(InterruptionFrame())  # cancel a stalled generation below
            await self.push_frame(LLMContextFrame(context=self._context.llm_context()))
            self._arm()
            return
        self._attempt = 2
        self._awaiting_turn = None
        self.stats.fallbacks += 1
        logger.warning(f"{self}: still no agent speech for turn {turn}; speaking the fallback")
        await self.push_frame(InterruptionFrame())
        await self.push_frame(TTSSpeakFrame(text=self._params.fallback_text))
        self._arm()

    async def _on_idle_timeout(self) -> None:
        self._idle_timer = None
        if self._closed or self._caller_speaking or self._agent_speaking:
            return
        if self._awaiting_turn is not None or self._reprompts >= self._params.max_reprompts:
            return
        self._reprompts += 1
        self.stats.reprompts += 1
        logger.info(f"{self}: caller silent {self._params.idle_timeout_s:.0f}s; re-prompting")
        await self.push_frame(TTSSpeakFrame(text=self._params.reprompt_text))
