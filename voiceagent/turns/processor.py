"""``TurnProcessor``: the turn engine in a pipecat pipeline (between the STT and the LLM).

Frame contract:

- consumes, downstream: ``CallStartedFrame`` (speaks the greeting), ``CallerSoundFrame``,
  ``VADUserStartedSpeakingFrame`` / ``VADUserStoppedSpeakingFrame``, transcripts
  (``InterimTranscriptionFrame`` / ``TranscriptionFrame``, with an ``AudioSpan`` when the STT
  attaches one), ``InputDTMFFrame``, ``EndOfTurnFrame``. Caller audio stops here (it is not
  forwarded: nothing after the turn engine needs it).
- consumes, upstream: ``BotStartedSpeakingFrame`` / ``BotStoppedSpeakingFrame`` (from the
  output's playback), the LLM's ``FunctionCallsStartedFrame``
  / ``FunctionCallResultFrame`` (tool results join the conversation and are answered),
  ``EagerEndOfTurnCancelFrame`` (the LLM withdrew a speculation), ``ErrorFrame``.
- consumes, from either side: ``AgentHeardFrame``, what the caller heard of each agent turn
  (one per turn that played out or was cut). The conversation keeps only that text.
- emits: ``UserStartedSpeakingFrame`` / ``UserStoppedSpeakingFrame`` (pipecat's turn frames;
  the LLM service's speculation gate releases a held reply on the latter),
  ``LLMContextFrame`` (``speculation=True`` for early starts), ``EagerEndOfTurnCancelFrame``,
  ``InterruptionFrame`` (both ways on a barge-in, downstream only to drop a reply nobody heard),
  ``PlaybackPauseFrame`` / ``PlaybackResumeFrame``, ``TTSSpeakFrame`` (greeting, resume,
  re-prompt), ``UserTurnCommittedFrame``, ``TurnMetricsFrame``, ``TurnDecisionFrame`` and
  ``TurnCountsFrame`` (for observers and the server's /metrics),
  ``ConversationUpdatedFrame`` (after heard agent speech: a local LLM can pre-evaluate it).
  Everything else is forwarded.

Requires downstream: a pipecat LLM service with ``VoiceLLMMixin`` (pipecat's speculation gate
holds speculative replies; the mixin voids withdrawn ones still queued and applies the tool
policy) and an output that reports playback: ``BotStarted/StoppedSpeakingFrame`` (any pipecat
output transport) and ``AgentHeardFrame`` — pushed upstream by voiceagent's ``TwilioOutput``, or
downstream from a pipecat transport's input by ``TwilioFrameSerializer`` (with ``TwilioMarks``
before the output). Without ``AgentHeardFrame`` the conversation never learns what the agent
said. ``PlaybackPauseFrame`` / ``PlaybackResumeFrame`` are honoured by ``TwilioOutput`` only; a
pipecat output plays on until the barge-in's ``InterruptionFrame``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EagerEndOfTurnCancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock, Deadline
from voiceagent.frames import (
    AgentHeardFrame,
    CallEndedFrame,
    CallerSoundFrame,
    CallStartedFrame,
    ConversationUpdatedFrame,
    EndOfTurnFrame,
    PlaybackPauseFrame,
    PlaybackResumeFrame,
    TurnCountsFrame,
    TurnDecisionFrame,
    TurnMetricsFrame,
    UserTurnCommittedFrame,
    audio_span,
)
from voiceagent.turns import decisions as d
from voiceagent.turns.conversation import Conversation, ToolExchange
from voiceagent.turns.engine import TurnEngine
from voiceagent.turns.options import TurnTaking
from voiceagent.turns.state import COUNTERS, TurnStats
from voiceagent.turns.transcript import Transcript

KeypadHandler = Callable[[str], Awaitable[bool]]
"""A bot's keypad actions: given a finished entry, True when it handled it (no LLM turn)."""

_TIMER_EARLY_S = 5e-7


class _ToolCalls:
    """A turn's tool calls between ``FunctionCallsStartedFrame`` and their last result."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.done: list[ToolExchange] = []
        self.follow_up = False
        self.quiet = False  # a barge-in came meanwhile: results join, no follow-up


class TurnProcessor(FrameProcessor):
    """Feeds the call's turn events to a ``TurnEngine`` and carries out its decisions."""

    def __init__(
        self,
        *,
        options: TurnTaking | None = None,
        conversation: Conversation | None = None,
        greeting: str = "",
        outbound_greeting: str = "",
        on_keypad: KeypadHandler | None = None,
        clock: Clock = DEFAULT_CLOCK,
        **kwargs,
    ) -> None:
        """Create the processor.

        Args:
            options: Turn-taking options (validated ``TurnTaking``).
            conversation: The call's conversation (tools advertised on it); a new one if None.
            greeting: Spoken when the call starts ("" for none).
            outbound_greeting: Spoken instead on a call the agent placed (stream parameter
                ``Direction=outbound-api``), when given.
            on_keypad: The bot's keypad actions; unhandled entries become caller turns.
            clock: Time source (``ManualClock`` in tests).
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self.engine = TurnEngine(options, conversation)
        self.greeting = greeting
        self.outbound_greeting = outbound_greeting
        self.on_keypad = on_keypad
        self.on_finished: Callable[[TurnStats], None] | None = None
        """Called once with the call's counters when the call ends."""
        self._clock = clock
        self._deadline = Deadline(clock, self._on_timer, early_s=_TIMER_EARLY_S)
        self._lock = asyncio.Lock()
        self._tools = _ToolCalls()
        self._tasks: set[asyncio.Task] = set()
        self._stopped = False
        self._reported = self.engine.stats.counters()

    @property
    def conversation(self) -> Conversation:
        """The call's conversation (what the LLM is given)."""
        return self.engine.conversation

    @property
    def stats(self) -> TurnStats:
        """The call's turn-taking counters."""
        return self.engine.stats

    # ------------------------------------------------------------------ frames in

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Translate the frame into an engine event, forward it, act on the decisions."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            return  # caller audio ends here
        now = self._clock.now()
        async with self._lock:
            if isinstance(frame, AgentHeardFrame):  # from either side: see the module docstring
                decisions = await self._agent_heard(frame, now)
            elif direction is FrameDirection.DOWNSTREAM:
                decisions = self._downstream_event(frame, now)
            else:
                decisions = await self._upstream_event(frame, now)
            if isinstance(frame, EndFrame | CancelFrame | CallEndedFrame) and not self._stopped:
                await self._apply(self.engine.close())  # the last turn's figures go out first
                await self._report_counts()
                self._stop()
            await self.push_frame(frame, direction)
            await self._apply(decisions)
            await self._report_counts()
            self._arm(now)

    def _downstream_event(self, frame: Frame, now: float) -> list[d.Decision]:
        e = self.engine
        if isinstance(frame, CallerSoundFrame):
            return e.caller_sound(now, frame.sounding, at=now - frame.since_s)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            return e.speech_started(now, now - frame.start_secs)
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            return e.speech_stopped(now, now - frame.stop_secs)
        if isinstance(frame, InterimTranscriptionFrame | TranscriptionFrame):
            if not isinstance(frame.text, str):
                logger.warning(f"{self}: ignoring {frame.name} without text ({frame.text!r})")
                return []
            final = isinstance(frame, TranscriptionFrame)
            return e.transcript(now, Transcript(frame.text, final, now, audio_span(frame)))
        if isinstance(frame, InputDTMFFrame):
            return e.dtmf(now, frame.button.value)
        if isinstance(frame, EndOfTurnFrame):
            return e.end_of_turn(now, frame.complete, frame.probability)
        if isinstance(frame, CallStartedFrame):
            outbound = frame.custom_parameters.get("Direction") == "outbound-api"
            return e.greet(now, (outbound and self.outbound_greeting) or self.greeting)
        return []

    async def _upstream_event(self, frame: Frame, now: float) -> list[d.Decision]:
        e = self.engine
        if isinstance(frame, BotStartedSpeakingFrame):
            return e.agent_started(now)
        if isinstance(frame, BotStoppedSpeakingFrame):
            return e.agent_stopped(now)
        if isinstance(frame, EagerEndOfTurnCancelFrame):
            return e.speculation_withdrawn(now)
        if isinstance(frame, ErrorFrame):
            return e.provider_error(now)
        if isinstance(frame, FunctionCallsStartedFrame):
            for call in frame.function_calls:
                self._tools.running.add(call.tool_call_id)
            return []
        if isinstance(frame, FunctionCallResultFrame | FunctionCallCancelFrame):
            return self._tool_settled(frame, now)
        return []

    async def _agent_heard(self, frame: AgentHeardFrame, now: float) -> list[d.Decision]:
        out = self.engine.agent_heard(
            now,
            frame.text,
            interrupted=frame.interrupted,
            unheard=frame.unheard_text,
            in_context=frame.in_context,
        )
        if frame.in_context and frame.text:
            await self.push_frame(ConversationUpdatedFrame(self.conversation.llm_context()))
        return out

    def _tool_settled(
        self, frame: FunctionCallResultFrame | FunctionCallCancelFrame, now: float
    ) -> list[d.Decision]:
        tools = self._tools
        if isinstance(frame, FunctionCallResultFrame):
            props = frame.properties
            if props is not None and props.is_final is False:
                return []  # a progress report; the result follows
            run_llm = frame.run_llm
            if props is not None and props.run_llm is not None:
                run_llm = props.run_llm
            tools.follow_up = tools.follow_up or run_llm is not False
            tools.done.append(
                ToolExchange(frame.tool_call_id, frame.function_name, frame.arguments, frame.result)
            )
        if frame.tool_call_id not in tools.running:
            return []
        tools.running.discard(frame.tool_call_id)
        if tools.running:
            return []
        self._tools = _ToolCalls()
        follow_up = tools.follow_up and not tools.quiet
        return self.engine.tool_results(now, tools.done, follow_up=follow_up)

    # ------------------------------------------------------------------ decisions out

    async def _apply(self, decisions: list[d.Decision]) -> None:
        for decision in decisions:
            logger.trace(f"{self}: {decision}")
            await self._do(decision)

    async def _do(self, x: d.Decision) -> None:  # noqa: C901 (one branch per decision kind)
        if isinstance(x, d.OpenTurn):
            await self.push_frame(UserStartedSpeakingFrame())
        elif isinstance(x, d.Speculate):
            await self.push_frame(LLMContextFrame(context=x.context, speculation=True))
        elif isinstance(x, d.CancelSpeculation):
            await self.push_frame(EagerEndOfTurnCancelFrame())
        elif isinstance(x, d.Commit):
            logger.debug(f"{self}: caller turn {x.turn_id} ({x.reason}) [{x.text}]")
            await self.push_frame(
                UserTurnCommittedFrame(
                    turn_id=x.turn_id,
                    text=x.text,
                    speculative_hit=x.speculative_hit,
                    reason=x.reason,
                    at=x.at,
                )
            )
            await self.push_frame(UserStoppedSpeakingFrame())
            if x.context is not None:
                await self.push_frame(LLMContextFrame(context=x.context))
        elif isinstance(x, d.Revise):
            logger.debug(f"{self}: caller turn {x.turn_id} revised [{x.text}]")
            await self.push_frame(
                UserTurnCommittedFrame(turn_id=x.turn_id, text=x.text, revision=True)
            )
            if x.context is not None:
                await self.push_frame(InterruptionFrame())
                await self.push_frame(LLMContextFrame(context=x.context))
        elif isinstance(x, d.StartReply):
            await self.push_frame(TurnDecisionFrame(kind="reply", reason=x.reason))
            await self.push_frame(LLMContextFrame(context=x.context))
        elif isinstance(x, d.CancelReply):
            self._tools.quiet = True
            await self.push_frame(TurnDecisionFrame(kind="cancel_reply", reason=x.reason))
            await self.push_frame(InterruptionFrame())
        elif isinstance(x, d.Interrupt):
            logger.debug(f"{self}: barge-in ({x.reason}), interrupting the agent")
            self._tools.quiet = True
            await self.push_frame(TurnDecisionFrame(kind="barge_in", reason=x.reason))
            await self.broadcast_interruption()
        elif isinstance(x, d.PausePlayback):
            await self.push_frame(PlaybackPauseFrame(reason=x.reason))
        elif isinstance(x, d.ResumePlayback):
            await self.push_frame(PlaybackResumeFrame(reason=x.reason))
        elif isinstance(x, d.Say):
            await self.push_frame(TurnDecisionFrame(kind="say", reason=x.reason, text=x.text))
            await self.push_frame(TTSSpeakFrame(text=x.text, append_to_context=x.in_context))
        elif isinstance(x, d.KeypadEntered):
            await self._keypad(x.digits)
        elif isinstance(x, d.TurnReport):
            await self.push_frame(TurnMetricsFrame(turn_id=x.turn_id, data=x.data))

    async def _report_counts(self) -> None:
        """Push ``TurnCountsFrame`` with the counters that grew since the last report."""
        counts = self.engine.stats.counters()
        if counts == self._reported or self._stopped:
            return
        changes = {
            name: new - old
            for name, new, old in zip(COUNTERS, counts, self._reported, strict=True)
            if new != old
        }
        self._reported = counts
        await self.push_frame(TurnCountsFrame(changes=changes))

    async def _keypad(self, digits: str) -> None:
        handler = self.on_keypad
        if handler is not None:
            try:
                if await handler(digits):
                    return
            except Exception as e:  # a bot's handler must not break the call
                logger.opt(exception=e).error(f"{self}: keypad handler failed for {digits!r}")
        await self._apply(self.engine.keypad_turn(self._clock.now(), digits))

    # ------------------------------------------------------------------ time

    def _arm(self, now: float) -> None:
        self._deadline.set(None if self._stopped else self.engine.next_deadline(now))

    def _on_timer(self) -> None:
        if self._stopped:
            return
        task = self.create_task(self._tick(), f"{self}::tick")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tick(self) -> None:
        async with self._lock:
            now = self._clock.now()
            await self._apply(self.engine.tick(now))
            await self._report_counts()
            self._arm(now)

    def _stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._deadline.cancel()
        if self.on_finished is not None:
            try:
                self.on_finished(self.engine.stats)
            except Exception as e:  # a metrics sink must never break a call
                logger.warning(f"{self}: on_finished callback failed: {e}")

    async def cleanup(self) -> None:
        """Cancel the pending deadline and any tick still scheduled."""
        self._stop()
        for task in list(self._tasks):
            await self.cancel_task(task)
        await super().cleanup()
