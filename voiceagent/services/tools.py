"""Agent tools and when they may run: read-only at once, side effects only for committed turns.

An ``AgentTool`` is a name, a description, a JSON-schema ``parameters`` object, an async
handler taking the validated arguments, and ``side_effects``: ``book_appointment`` and
``end_call`` change the world, ``lookup_hours`` only reads it. A ``ToolRegistry`` holds the
call's tools and produces the schema for ``LLMContext(tools=...)`` (a pipecat
``ToolsSchema``; ``openai_tools()`` gives the same tools as OpenAI dicts, e.g. for
``LlamaServer.warm_up``). ``VoiceLLMService.register_tools`` registers the handlers.

Arguments are validated against the schema before the handler runs
(:mod:`voiceagent.services.tool_schema`). Invalid arguments never reach the handler: the LLM
gets an ``{"error": ...}`` result instead, and a handler that raises does too. No exception
escapes to pipecat.

``ToolCallPolicy`` decides per generation (the router's ``GenerationTagFrame`` names it):

- read-only calls run at once (pipecat may cancel them on a barge-in);
- side-effecting calls of a speculative generation wait for ``SpeculationCommitFrame`` of
  its turn and are dropped on ``SpeculationDiscardFrame``/``LLMCancelFrame``/barge-in;
- a side-effecting call approved to run is dropped if a barge-in or a cancel of its turn
  arrives before its handler starts; once started it is not cancelled (it is registered
  with ``cancel_on_interruption=False``) and its result is kept.

Dropped calls are logged at info and counted in ``ToolStats``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import FunctionCallFromLLM, FunctionCallResultProperties
from pipecat.services.llm_service import FunctionCallParams

from voiceagent.services.tool_schema import check_schema, validate_arguments

ToolHandler = Callable[[dict[str, Any]], Awaitable[Any]]
"""A tool's implementation: validated arguments in, a JSON-serializable result out."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_ARMED = 64


@dataclass(frozen=True)
class AgentTool:
    """One tool the agent may call.

    Attributes:
        name: Function name the LLM calls (``[A-Za-z0-9_-]``, at most 64 characters).
        description: What it does, for the LLM.
        parameters: JSON schema of the arguments: an ``object`` schema with ``properties``
            and ``required``.
        handler: ``async (args) -> result``; ``args`` are validated; the result must be
            JSON-serializable (it goes back to the LLM).
        side_effects: True when a call changes the world (booking, hanging up). Such calls
            run only for committed, still-alive generations and are never cancelled once
            started.
        follow_up: Whether the LLM answers again once the result is in (sent as pipecat's
            ``FunctionCallResultProperties.run_llm``). False for ``end_call``: the goodbye
            is said before the call, nothing follows it.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    handler: ToolHandler
    side_effects: bool
    follow_up: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"invalid tool name {self.name!r}")
        if self.parameters.get("type", "object") != "object":
            raise ValueError(f"{self.name}: parameters must be an object schema")
        check_schema(self.parameters, self.name)

    def function_schema(self) -> FunctionSchema:
        """The pipecat schema advertising this tool (without a handler: it is registered)."""
        return FunctionSchema(
            name=self.name,
            description=self.description,
            properties=dict(self.parameters.get("properties", {})),
            required=list(self.parameters.get("required", [])),
        )

    def validate(self, arguments: Any) -> tuple[dict[str, Any] | None, list[str]]:
        """Validated arguments (None if invalid) and the list of problems found."""
        return validate_arguments(arguments, self.parameters)

    async def call(self, arguments: Any, stats: ToolStats | None = None) -> Any:
        """Validate and run; invalid arguments and handler failures become error results."""
        args, errors = self.validate(arguments)
        if args is None:
            logger.warning(f"tool {self.name}: invalid arguments {arguments!r}: {errors}")
            if stats is not None:
                stats.invalid_arguments += 1
            return {
                "error": f"invalid arguments for {self.name}: " + "; ".join(errors),
                "executed": False,
            }
        try:
            return await self.handler(args)
        except Exception as e:
            logger.exception(f"tool {self.name} failed: {e}")
            if stats is not None:
                stats.failures += 1
            return {"error": f"{self.name} failed ({type(e).__name__})", "executed": False}


class ToolRegistry:
    """The tools of one agent, by name."""

    def __init__(self, tools: Iterable[AgentTool] = ()) -> None:
        self._tools: dict[str, AgentTool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: AgentTool) -> None:
        """Add a tool; names must be unique."""
        if tool.name in self._tools:
            raise ValueError(f"duplicate tool name {tool.name!r}")
        self._tools[tool.name] = tool

    def get(self, name: str) -> AgentTool | None:
        """The tool called ``name``, if any."""
        return self._tools.get(name)

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def tools_schema(self) -> ToolsSchema:
        """The tools for ``LLMContext(tools=...)`` (or ``CallContext(tools=...)``)."""
        return ToolsSchema(standard_tools=[t.function_schema() for t in self._tools.values()])

    def openai_tools(self) -> list[dict[str, Any]]:
        """The tools as OpenAI chat-completions dicts."""
        return [
            {"type": "function", "function": t.function_schema().to_default_dict()}
            for t in self._tools.values()
        ]


@dataclass
class ToolStats:
    """Counters of one call's tool calls."""

    admitted: int = 0
    deferred: int = 0
    released: int = 0
    dropped: int = 0
    dropped_reasons: dict[str, int] = field(default_factory=dict)
    invalid_arguments: int = 0
    failures: int = 0


@dataclass
class _Generation:
    turn_id: int | None
    speculative: bool
    dead: str | None = None
    deferred: list[FunctionCallFromLLM] = field(default_factory=list)


class ToolCallPolicy:
    """Which tool calls of which generation may run, and when (pure state; no I/O).

    The LLM service feeds it, in its own frame order: ``on_tag`` (data order, right before
    a generation), ``begin_generation``/``end_generation`` around each ``LLMContextFrame``,
    ``admit`` for the calls a generation produced, and the verdicts (system frames,
    possibly early): ``on_commit``, ``on_discard``, ``on_cancel``, ``on_interruption``.
    """

    def __init__(self, side_effects: Callable[[str], bool]) -> None:
        """Create the policy.

        Args:
            side_effects: Whether calling the named function has side effects.
        """
        self._side_effects = side_effects
        self.stats = ToolStats()
        self._next: tuple[int, bool] | None = None
        self._current: _Generation | None = None
        self._committed: set[int] = set()
        self._discarded: dict[int, str] = {}
        self._waiting: dict[int, _Generation] = {}
        self._armed: deque[tuple[str | None, int | None]] = deque(maxlen=_MAX_ARMED)

    # ------------------------------------------------------------- generations

    def on_tag(self, turn_id: int, speculative: bool) -> None:
        """The next generation answers ``turn_id`` (speculatively or not)."""
        self._next = (turn_id, speculative)

    def begin_generation(self) -> None:
        """A generation starts (untagged ones count as committed)."""
        turn_id, speculative = self._next if self._next is not None else (None, False)
        self._next = None
        self._current = _Generation(turn_id, speculative)
        if turn_id is None:
            return
        # Generations run in order: verdicts and waits of earlier turns are settled.
        self._committed = {t for t in self._committed if t >= turn_id}
        self._discarded = {t: r for t, r in self._discarded.items() if t >= turn_id}
        for t in [t for t in self._waiting if t < turn_id]:
            self._drop_generation(self._waiting.pop(t), "superseded")

    def end_generation(self) -> None:
        """The current generation finished streaming (or was cancelled)."""
        self._current = None

    def admit(self, calls: Sequence[FunctionCallFromLLM]) -> list[FunctionCallFromLLM]:
        """The calls of the current generation that may run now; defers or drops the rest."""
        gen = self._current
        run: list[FunctionCallFromLLM] = []
        for call in calls:
            if not self._side_effects(call.function_name):
                run.append(call)
                continue
            verdict = self._verdict(gen)
            if verdict == "run":
                run.append(call)
                self._armed.append((call.tool_call_id, gen.turn_id if gen else None))
            elif verdict == "defer":
                assert gen is not None and gen.turn_id is not None
                gen.deferred.append(call)
                self._waiting[gen.turn_id] = gen
                self.stats.deferred += 1
                logger.debug(f"tool call {call.function_name} of turn {gen.turn_id} deferred")
            else:
                self._drop(call.function_name, gen.turn_id if gen else None, verdict)
        self.stats.admitted += len(run)
        return run

    def _verdict(self, gen: _Generation | None) -> str:
        if gen is None:
            return "run"
        if gen.dead is not None:
            return gen.dead
        if gen.turn_id is not None and gen.turn_id in self._discarded:
            return self._discarded[gen.turn_id]
        if not gen.speculative or gen.turn_id in self._committed:
            return "run"
        return "defer"

    # ------------------------------------------------------------------ verdicts

    def on_commit(self, turn_id: int) -> list[FunctionCallFromLLM]:
        """The caller's turn was committed on the speculated text: deferred calls may run."""
        self._committed.add(turn_id)
        gen = self._waiting.pop(turn_id, None)
        if gen is None:
            return []
        calls, gen.deferred = gen.deferred, []
        for call in calls:
            self._armed.append((call.tool_call_id, turn_id))
        self.stats.released += len(calls)
        self.stats.admitted += len(calls)
        if calls:
            logger.debug(f"turn {turn_id} committed: running {len(calls)} deferred tool call(s)")
        return calls

    def deferred_calls(self, turn_id: int) -> int:
        """How many side-effecting calls of ``turn_id`` wait for its commit."""
        gen = self._waiting.get(turn_id)
        return len(gen.deferred) if gen is not None else 0

    def on_discard(self, turn_id: int, reason: str = "speculation_discarded") -> None:
        """The generation of ``turn_id`` will not be spoken: none of its side effects run."""
        self._kill(turn_id, reason)

    def on_cancel(self, turn_id: int, reason: str = "") -> None:
        """``LLMCancelFrame``: the running generation (and ``turn_id``'s) is withdrawn."""
        why = f"cancelled ({reason})" if reason else "cancelled"
        if self._current is not None and self._current.dead is None:
            self._current.dead = why
        self._kill(turn_id, why)

    def on_interruption(self) -> None:
        """A barge-in: every generation not yet executing its side effects is dead."""
        self._next = None
        if self._current is not None:
            self._current.dead = "interrupted"
        for gen in self._waiting.values():
            self._drop_generation(gen, "interrupted")
        self._waiting.clear()
        self._committed.clear()
        self._discarded.clear()
        self._armed.clear()

    def claim_start(self, tool_call_id: str | None) -> bool:
        """Called as a side-effecting handler starts: whether it is still allowed to run."""
        for entry in self._armed:
            if entry[0] == tool_call_id:
                self._armed.remove(entry)
                return True
        return False

    def refused(self, function_name: str) -> None:
        """Count a call whose approval was withdrawn before its handler started."""
        self._drop(function_name, None, "withdrawn_before_start")

    def _kill(self, turn_id: int, reason: str) -> None:
        self._discarded.setdefault(turn_id, reason)
        self._committed.discard(turn_id)
        if self._current is not None and self._current.turn_id == turn_id:
            self._current.dead = self._current.dead or reason
        gen = self._waiting.pop(turn_id, None)
        if gen is not None:
            self._drop_generation(gen, reason)
        self._armed = deque((e for e in self._armed if e[1] != turn_id), maxlen=_MAX_ARMED)

    def _drop_generation(self, gen: _Generation, reason: str) -> None:
        calls, gen.deferred = gen.deferred, []
        for call in calls:
            self._drop(call.function_name, gen.turn_id, reason)

    def _drop(self, function_name: str, turn_id: int | None, reason: str) -> None:
        self.stats.dropped += 1
        self.stats.dropped_reasons[reason] = self.stats.dropped_reasons.get(reason, 0) + 1
        turn = "" if turn_id is None else f" of turn {turn_id}"
        logger.info(f"tool call {function_name}{turn} dropped: {reason}")


def pipecat_handler(
    tool: AgentTool, policy: ToolCallPolicy
) -> Callable[[FunctionCallParams], Awaitable[None]]:
    """The pipecat function-call handler of ``tool`` under ``policy``.

    A side-effecting tool first claims its approval: if a barge-in or a cancel of its turn
    withdrew it since the call was admitted, the handler does not run and the LLM is told.
    The result carries ``run_llm=tool.follow_up`` (``False`` for a refused call: the caller
    is talking, their next turn is answered instead).
    """

    async def handle(params: FunctionCallParams) -> None:
        if tool.side_effects and not policy.claim_start(params.tool_call_id):
            policy.refused(tool.name)
            await params.result_callback(
                {
                    "error": f"{tool.name} was not executed: the caller interrupted first",
                    "executed": False,
                },
                properties=FunctionCallResultProperties(run_llm=False),
            )
            return
        result = await tool.call(params.arguments, policy.stats)
        await params.result_callback(
            result, properties=FunctionCallResultProperties(run_llm=tool.follow_up)
        )

    return handle
