"""Tool results back to the LLM: into the call's context, then one follow-up generation.

``ToolResultRelay`` sits right before the LLM (after the watchdog). The LLM service broadcasts
``FunctionCallsStartedFrame`` and ``FunctionCallResultFrame`` upstream; the relay collects the
results of each turn's calls and, once none of them is still running, adds them to the
:class:`~voiceagent.processors.agent_context.CallContext` (assistant ``tool_calls`` + ``tool``
messages) and asks the LLM to answer with them: ``GenerationTagFrame(turn)`` +
``LLMContextFrame``, in data order, like the router's own requests.

Which turn a call belongs to: the relay remembers the ``LLMContext`` of each request it
forwards (tagged by the router's ``GenerationTagFrame``), and every started call names its
context. Results of a speculative turn wait for its commit (``SpeculationCommitFrame``) and
are dropped when the turn is discarded or cancelled: what the caller never committed never
enters the conversation. A barge-in drops uncommitted results; results of committed calls
still running (a booking is never cancelled once started) join the context when they come,
without a follow-up: the caller is talking, and their next turn is answered with them.

A result with ``run_llm=False`` (e.g. ``end_call``) joins the context without a follow-up.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    InterruptionFrame,
    LLMContextFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.frames import LLMCancelFrame, SpeculationCommitFrame, SpeculationDiscardFrame
from voiceagent.processors.agent_context import CallContext, ToolExchange
from voiceagent.processors.speculation_hold import GenerationTagFrame

_MAX_REQUESTS = 32
"""Recent LLM requests whose turn is remembered (calls are made at most a few requests back)."""

Origin = tuple[int | None, bool]
"""(router turn id or None for an untagged request, speculative)."""


@dataclass
class _Turn:
    """The tool calls of one turn: running, and finished but not yet in the context."""

    speculative: bool
    running: set[str] = field(default_factory=set)
    done: list[ToolExchange] = field(default_factory=list)
    follow_up: bool = False
    quiet: bool = False  # a barge-in came after its calls: no follow-up


@dataclass
class ToolRelayStats:
    """Counters of one call's tool results."""

    results: int = 0
    follow_ups: int = 0
    dropped: int = 0


class ToolResultRelay(FrameProcessor):
    """Adds committed tool results to the call's context and has the LLM answer with them."""

    def __init__(
        self,
        context: CallContext,
        *,
        deferred_calls: Callable[[int], int] | None = None,
        **kwargs,
    ) -> None:
        """Create the relay.

        Args:
            context: The call's conversation.
            deferred_calls: How many side-effecting calls of a turn still wait for its commit
                (the LLM service's ``tool_policy.deferred_calls``): at the commit, results wait
                for those too, so the LLM answers once with all of them.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._context = context
        self._deferred_calls = deferred_calls
        self.stats = ToolRelayStats()
        self._next_tag: GenerationTagFrame | None = None
        self._requests: OrderedDict[int, tuple[LLMContext, Origin]] = OrderedDict()
        self._calls: dict[str, int | None] = {}  # tool_call_id → turn
        self._turns: dict[int | None, _Turn] = {}
        self._committed: set[int] = set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Track requests and verdicts going down, calls and results coming up."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, GenerationTagFrame):
                self._next_tag = frame
            elif isinstance(frame, LLMContextFrame):
                tag, self._next_tag = self._next_tag, None
                origin = (tag.turn_id, tag.speculative) if tag is not None else (None, False)
                self._remember(frame.context, origin)
            elif isinstance(frame, SpeculationCommitFrame):
                await self.push_frame(frame, direction)
                await self._on_commit(frame.turn_id)
                return
            elif isinstance(frame, SpeculationDiscardFrame | LLMCancelFrame):
                self._drop_turn(frame.turn_id, "discarded")
        if isinstance(frame, InterruptionFrame):
            self._on_interruption()
        elif isinstance(frame, EndFrame | CancelFrame):
            self._turns.clear()
        elif direction is FrameDirection.UPSTREAM:
            if isinstance(frame, FunctionCallsStartedFrame):
                for call in frame.function_calls:
                    self._on_started(call.tool_call_id, call.context)
            elif isinstance(frame, FunctionCallResultFrame):
                await self.push_frame(frame, direction)
                await self._on_result(frame)
                return
            elif isinstance(frame, FunctionCallCancelFrame):
                await self.push_frame(frame, direction)
                await self._on_settled(frame.tool_call_id, None)
                return
        await self.push_frame(frame, direction)

    # ---------------------------------------------------------------- bookkeeping

    def _remember(self, context: LLMContext, origin: Origin) -> None:
        self._requests[id(context)] = (context, origin)
        while len(self._requests) > _MAX_REQUESTS:
            self._requests.popitem(last=False)

    def _origin(self, context: LLMContext | None) -> Origin:
        entry = self._requests.get(id(context)) if context is not None else None
        if entry is None or entry[0] is not context:
            return (None, False)  # a request the relay did not see: count it as committed
        return entry[1]

    def _on_started(self, tool_call_id: str, context: LLMContext | None) -> None:
        turn_id, speculative = self._origin(context)
        turn = self._turns.get(turn_id)
        if turn is None:
            turn = self._turns[turn_id] = _Turn(speculative=speculative)
        turn.running.add(tool_call_id)
        self._calls[tool_call_id] = turn_id

    async def _on_result(self, frame: FunctionCallResultFrame) -> None:
        properties = frame.properties
        if properties is not None and properties.is_final is False:
            return  # a progress report; the final result follows
        exchange = ToolExchange(
            frame.tool_call_id, frame.function_name, frame.arguments, frame.result
        )
        run_llm = frame.run_llm
        if properties is not None and properties.run_llm is not None:
            run_llm = properties.run_llm
        await self._on_settled(frame.tool_call_id, exchange, follow_up=run_llm is not False)

    async def _on_settled(
        self, tool_call_id: str, exchange: ToolExchange | None, *, follow_up: bool = False
    ) -> None:
        if tool_call_id not in self._calls:
            if exchange is not None:
                logger.debug(f"{self}: result of an unknown call {exchange.name}: not relayed")
            return
        turn_id = self._calls.pop(tool_call_id)
        turn = self._turns.get(turn_id)
        if turn is None:
            return  # the turn was dropped meanwhile
        turn.running.discard(tool_call_id)
        if exchange is not None:
            self.stats.results += 1
            turn.done.append(exchange)
            turn.follow_up = turn.follow_up or follow_up
        await self._flush(turn_id)

    async def _on_commit(self, turn_id: int) -> None:
        self._committed.add(turn_id)
        while len(self._committed) > _MAX_REQUESTS:
            self._committed.discard(min(self._committed))
        await self._flush(turn_id)

    def _drop_turn(self, turn_id: int, reason: str) -> None:
        turn = self._turns.get(turn_id)
        committed = turn_id in self._committed
        self._committed.discard(turn_id)
        if turn is None:
            return
        if committed or not turn.speculative:
            turn.speculative = False  # results of committed calls are facts: they still join
            turn.quiet = True
            return
        self._turns.pop(turn_id)
        for call_id in turn.running:
            self._calls.pop(call_id, None)
        if turn.done:
            self.stats.dropped += len(turn.done)
            names = ", ".join(x.name for x in turn.done)
            logger.debug(f"{self}: turn {turn_id} {reason}: its tool results ({names}) dropped")

    def _on_interruption(self) -> None:
        for turn_id, turn in list(self._turns.items()):
            committed = not turn.speculative or turn_id in self._committed
            if committed:
                turn.speculative = False
                turn.quiet = True
            elif turn_id is not None:
                self._drop_turn(turn_id, "interrupted")
        self._committed.clear()

    async def _flush(self, turn_id: int | None) -> None:
        """Add a turn's results to the context once all are in; ask for the answer."""
        turn = self._turns.get(turn_id)
        if turn is None or turn.running:
            return
        committed = not turn.speculative or turn_id in self._committed
        if not committed:
            return
        waiting = self._deferred_calls
        if turn_id is not None and waiting is not None and waiting(turn_id) > 0:
            return  # released at this commit: their results come next
        self._turns.pop(turn_id)
        if turn_id is not None:
            self._committed.discard(turn_id)
        if not turn.done:
            return
        self._context.add_tool_calls(turn.done)
        if not turn.follow_up or turn.quiet:
            return
        self.stats.follow_ups += 1
        names = ", ".join(x.name for x in turn.done)
        logger.debug(f"{self}: turn {turn_id}: answering with the results of {names}")
        context = self._context.llm_context()
        if turn_id is not None:
            await self.push_frame(GenerationTagFrame(turn_id=turn_id, speculative=False))
        self._remember(context, (turn_id, False))
        await self.push_frame(LLMContextFrame(context=context))
