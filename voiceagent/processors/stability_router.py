"""The commit side of turn-taking: when the caller is done, and starting the LLM before that.

``StabilityCommitRouter`` sits between the STT (behind the barge-in gate) and the LLM. It
feeds caller events to a ``CommitPolicy`` and turns its decisions into frames:

- speculate → ``SpeculationStartFrame``, ``GenerationTagFrame``,
  ``LLMContextFrame(context with the pending text)`` (the SpeculationHold holds the reply);
- cancel the speculation → ``LLMCancelFrame`` + ``SpeculationDiscardFrame``;
- commit → ``context.add_user``, ``UserTurnCommittedFrame``, then either
  ``SpeculationCommitFrame`` (same text, unchanged context: the held reply plays at once)
  or a fresh ``GenerationTagFrame`` + ``LLMContextFrame``;
- regret (the caller kept talking right after a commit) → counted; once the continuation
  has words and the agent is still silent, the reply is cancelled like a speculation;
- per turn a ``TurnMetricsFrame`` (after the regret window closes, or at the regret).

Upstream it adds what the caller heard of each agent turn (``AgentHeardFrame``) to the
context and tracks when the agent is audible. Every frame is forwarded.

Turn ids number LLM requests: each speculation and each fresh request gets a new one, and
a committed turn carries the id of the request answering it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    SystemFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock, Deadline
from voiceagent.frames import (
    AgentHeardFrame,
    EndOfTurnFrame,
    LLMCancelFrame,
    SpeculationCommitFrame,
    SpeculationDiscardFrame,
    SpeculationStartFrame,
    TurnMetricsFrame,
    UserTurnCommittedFrame,
)
from voiceagent.processors.agent_context import CallContext
from voiceagent.processors.commit_policy import (
    CancelReply,
    CancelSpeculation,
    Commit,
    CommitPolicy,
    Decision,
    Regret,
    RegretWindowClosed,
    Rerun,
    RouterParams,
    Speculate,
)
from voiceagent.processors.speculation_hold import GenerationTagFrame

__all__ = ["RouterParams", "RouterStats", "StabilityCommitRouter"]

_TIMER_EARLY_S = 5e-7
_EVENT_FRAMES = (
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    AgentHeardFrame,
    InterruptionFrame,
    EndOfTurnFrame,
)


@dataclass
class RouterStats:
    """Counters of one call's turn-taking, plus one dict per committed turn."""

    commits: int = 0
    speculative_starts: int = 0
    speculative_hits: int = 0
    cancellations: int = 0
    regrets: int = 0
    replies_cancelled: int = 0
    reruns: int = 0
    learned_pause_s: float | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Speculation:
    turn_id: int
    norm: str
    snapshot: tuple
    started_at: float


class StabilityCommitRouter(FrameProcessor):
    """Commits caller turns on stable partials/finals plus silence; starts the LLM early."""

    def __init__(
        self,
        context: CallContext,
        *,
        params: RouterParams | None = None,
        clock: Clock = DEFAULT_CLOCK,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._context = context
        self.params = params or RouterParams()
        self._clock = clock
        self._policy = CommitPolicy(self.params)
        self.stats = RouterStats()
        self.on_finished: Callable[[RouterStats], None] | None = None
        """Called once with the call's stats when the call ends (e.g. to fold into totals)."""
        self._last_id = 0
        self._spec: _Speculation | None = None
        self._reply_turn: int | None = None
        self._pending_metrics: dict[str, Any] | None = None
        self._stop_secs = 0.0
        self._outbox: deque[tuple[Frame, FrameDirection]] = deque()
        self._lock = asyncio.Lock()
        # A hair early: float sums of clock steps must not miss a deadline (the policy's times
        # have a microsecond tolerance).
        self._deadline = Deadline(clock, self._on_timer, early_s=_TIMER_EARLY_S)
        self._drains: set[asyncio.Task] = set()
        self._stopped = False

    # ------------------------------------------------------------------ frames

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Feed caller/agent events to the policy, forward the frame, emit the decisions."""
        await super().process_frame(frame, direction)
        if isinstance(frame, EndFrame | CancelFrame):
            self._stop()  # the last turn's metrics go out before the end
        self._outbox.append((frame, direction))
        if isinstance(frame, _EVENT_FRAMES):
            now = self._clock.now()
            self._apply(self._on_event(frame, direction, now), now)
            self._arm(now)
        await self._drain()

    def _on_event(self, frame: Frame, direction: FrameDirection, now: float) -> list[Decision]:
        if isinstance(frame, InterimTranscriptionFrame | TranscriptionFrame):
            if direction == FrameDirection.DOWNSTREAM:
                return self._on_transcript(frame, now)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            return self._policy.on_caller_started(now)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._stop_secs = frame.stop_secs
            return self._policy.on_caller_stopped(now)
        elif isinstance(frame, EndOfTurnFrame):
            if direction == FrameDirection.DOWNSTREAM:
                return self._policy.on_end_of_turn(frame.complete, frame.probability, now)
        elif isinstance(frame, BotStartedSpeakingFrame):
            return self._policy.on_agent_started(now)
        elif isinstance(frame, BotStoppedSpeakingFrame):
            return self._policy.on_agent_stopped(now)
        elif isinstance(frame, AgentHeardFrame):
            self._context.add_agent_heard(frame.text, interrupted=frame.interrupted)
        elif isinstance(frame, InterruptionFrame):
            self._on_interruption()
        return []

    def _on_transcript(
        self, frame: InterimTranscriptionFrame | TranscriptionFrame, now: float
    ) -> list[Decision]:
        if not isinstance(frame.text, str):
            logger.warning(f"{self}: ignoring {frame.name} without text ({frame.text!r})")
            return []
        if isinstance(frame, TranscriptionFrame):
            return self._policy.on_final(frame.text, now)
        return self._policy.on_partial(frame.text, now)

    def _on_interruption(self) -> None:
        """A barge-in flushed the LLM and everything after it."""
        self._policy.on_interruption()
        if self._spec is not None:
            self.stats.cancellations += 1
            self._spec = None
        self._reply_turn = None
        # Queued data frames are stale now, like everywhere else in the pipeline.
        self._outbox = deque(
            (f, d) for f, d in self._outbox if isinstance(f, SystemFrame) or not f.interruptible
        )

    def _stop(self) -> None:
        self._deadline.cancel()
        self._flush_metrics()
        if not self._stopped and self.on_finished is not None:
            try:
                self.on_finished(self.stats)
            except Exception as e:  # a metrics sink must never break a call
                logger.warning(f"{self}: on_finished callback failed: {e}")
        self._stopped = True

    async def cleanup(self) -> None:
        """Cancel the pending timer and any emission still scheduled."""
        self._stop()
        for task in list(self._drains):
            task.cancel()
        await super().cleanup()

    # --------------------------------------------------------------- decisions

    def _apply(self, decisions: list[Decision], now: float) -> None:
        for decision in decisions:
            if isinstance(decision, Speculate):
                self._speculate(decision, now)
            elif isinstance(decision, CancelSpeculation):
                self._cancel_speculation(decision.reason)
            elif isinstance(decision, Commit):
                self._commit(decision, now)
            elif isinstance(decision, Regret):
                self._regret(decision)
            elif isinstance(decision, CancelReply):
                self._cancel_reply()
            elif isinstance(decision, RegretWindowClosed):
                self._flush_metrics()
            elif isinstance(decision, Rerun):
                self._rerun()
        self.stats.learned_pause_s = self._policy.learned_pause_s

    def _emit(self, *frames: Frame) -> None:
        for frame in frames:
            self._outbox.append((frame, FrameDirection.DOWNSTREAM))

    def _new_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def _speculate(self, decision: Speculate, now: float) -> None:
        if self._spec is not None:
            self._cancel_speculation("replaced")
        turn_id = self._new_id()
        self._spec = _Speculation(turn_id, decision.norm, self._context.snapshot(), now)
        self.stats.speculative_starts += 1
        logger.debug(f"{self}: speculating turn {turn_id} on [{decision.text}]")
        self._emit(
            SpeculationStartFrame(turn_id=turn_id, text=decision.text),
            GenerationTagFrame(turn_id=turn_id, speculative=True),
            LLMContextFrame(context=self._context.llm_context(pending_user_text=decision.text)),
        )

    def _cancel_speculation(self, reason: str) -> None:
        spec = self._spec
        if spec is None:
            return
        self._spec = None
        self.stats.cancellations += 1
        logger.debug(f"{self}: speculation {spec.turn_id} cancelled ({reason})")
        # Discard first: the hold must be dropping this generation before the LLM's cancel
        # makes it push the reply's end frame (which would flush the aggregator into speech).
        self._emit(
            SpeculationDiscardFrame(turn_id=spec.turn_id),
            LLMCancelFrame(turn_id=spec.turn_id, reason=reason),
        )

    def _commit(self, decision: Commit, now: float) -> None:
        self._flush_metrics()
        spec = self._spec
        hit = (
            spec is not None
            and spec.norm == decision.norm
            and self._context.snapshot() == spec.snapshot
        )
        if spec is not None and not hit:
            self._cancel_speculation("commit_differs")
        self._spec = None
        self._context.add_user(decision.text)
        turn_id = spec.turn_id if hit and spec is not None else self._new_id()
        self.stats.commits += 1
        logger.debug(
            f"{self}: committed turn {turn_id} ({decision.reason}, hit={hit}) [{decision.text}]"
        )
        self._emit(
            UserTurnCommittedFrame(
                turn_id=turn_id,
                text=decision.text,
                speculative_hit=hit,
                reason=decision.reason,
                at=now,
            )
        )
        if hit:
            self.stats.speculative_hits += 1
            self._emit(SpeculationCommitFrame(turn_id=turn_id))
        else:
            self._emit(
                GenerationTagFrame(turn_id=turn_id, speculative=False),
                LLMContextFrame(context=self._context.llm_context()),
            )
        self._reply_turn = turn_id
        record: dict[str, Any] = {
            "turn_id": turn_id,
            "index": self.stats.commits,
            "text": decision.text,
            "reason": decision.reason,
            "speculative_hit": hit,
            "speculation_lead_s": now - spec.started_at if hit and spec is not None else None,
            "wait_s": decision.wait_s,
            "silence_s": None if decision.wait_s is None else decision.wait_s + self._stop_secs,
            "required_wait_s": decision.required_wait_s,
            "hesitation": decision.hesitation,
            "utterance_s": decision.utterance_s,
            "learned_pause_s": decision.learned_pause_s,
            "end_of_turn_p": decision.end_of_turn_p,
            "committed_at": now,
            "regret": False,
            "regret_after_s": None,
        }
        self.stats.turns.append(record)
        self._pending_metrics = record

    def _regret(self, decision: Regret) -> None:
        self.stats.regrets += 1
        record = self._pending_metrics
        logger.debug(f"{self}: caller kept talking {decision.after_s:.2f}s after the commit")
        if record is not None:
            record["regret"] = True
            record["regret_after_s"] = decision.after_s
            self._flush_metrics()

    def _cancel_reply(self) -> None:
        turn_id = self._reply_turn
        if turn_id is None:
            return
        self._reply_turn = None
        self.stats.replies_cancelled += 1
        # The agent is not audible yet, but chunks of the reply may already be in the
        # aggregator/TTS/output queues: a downstream-only interruption flushes them (nothing
        # upstream — VAD, STT, gate — is touched; no clear goes out since nothing was sent).
        self._emit(
            SpeculationDiscardFrame(turn_id=turn_id),
            LLMCancelFrame(turn_id=turn_id, reason="regret"),
            InterruptionFrame(),
        )

    def _rerun(self) -> None:
        """Answer the committed turn after all (its reply was cancelled for a wordless sound)."""
        turn_id = self._new_id()
        self.stats.reruns += 1
        logger.debug(f"{self}: no words after the regret; answering turn {turn_id} after all")
        self._emit(
            GenerationTagFrame(turn_id=turn_id, speculative=False),
            LLMContextFrame(context=self._context.llm_context()),
        )
        self._reply_turn = turn_id

    def _flush_metrics(self) -> None:
        record = self._pending_metrics
        if record is None:
            return
        self._pending_metrics = None
        self._emit(TurnMetricsFrame(turn_id=record["turn_id"], data=dict(record)))

    # ------------------------------------------------------------------ timing

    def _arm(self, now: float) -> None:
        """(Re)schedule the policy's next deadline on the clock."""
        self._deadline.set(None if self._stopped else self._policy.next_deadline(now))

    def _on_timer(self) -> None:
        """Clock callback: decide at the exact deadline time, push from a task."""
        if self._stopped:
            return
        now = self._clock.now()
        self._apply(self._policy.on_tick(now), now)
        self._arm(now)
        if self._outbox:
            task = self.create_task(self._drain(), name=f"{self}::timer_drain")
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)

    async def _drain(self) -> None:
        """Push queued frames in decision order (one pusher at a time)."""
        async with self._lock:
            while self._outbox:
                frame, direction = self._outbox.popleft()
                await self.push_frame(frame, direction)
