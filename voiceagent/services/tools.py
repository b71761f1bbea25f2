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

When they may run:

- never for a speculative generation: pipecat's LLM service withdraws a speculative inference
  that asks for a tool (the committed inference asks again), so nothing the caller did not
  commit has a side effect;
- read-only calls run at once (pipecat may cancel them on a barge-in);
- a side-effecting call is dropped by ``ToolGuard`` if a barge-in (or the turn engine dropping
  the reply) came between the model asking for it and its handler starting; once started it
  is not cancelled (it is registered with ``cancel_on_interruption=False``) and its result is
  kept.

Dropped calls are logged at info and counted in ``ToolStats``.
"""

from __future__ import annotations

import re
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
    dropped: int = 0
    dropped_reasons: dict[str, int] = field(default_factory=dict)
    invalid_arguments: int = 0
    failures: int = 0


class ToolGuard:
    """Drops side-effecting calls whose reply was interrupted before their handler started.

    The LLM service calls ``admit`` with the calls a generation produced and ``interrupted``
    on a barge-in or a dropped reply; a side-effecting handler calls ``claim`` as it starts.
    """

    def __init__(self, side_effects: Callable[[str], bool]) -> None:
        self._side_effects = side_effects
        self.stats = ToolStats()
        self._epoch = 0
        self._admitted: dict[str, int] = {}

    def admit(self, calls: Sequence[FunctionCallFromLLM]) -> None:
        """The model asked for ``calls`` now."""
        for call in calls:
            if self._side_effects(call.function_name):
                self._admitted[call.tool_call_id] = self._epoch
                while len(self._admitted) > _MAX_ARMED:
                    self._admitted.pop(next(iter(self._admitted)))
        self.stats.admitted += len(calls)

    def interrupted(self) -> None:
        """A barge-in or a dropped reply: calls not started yet must not run."""
        self._epoch += 1

    def claim(self, tool_call_id: str | None, function_name: str) -> bool:
        """A side-effecting handler starts: whether it may still run."""
        epoch = self._admitted.pop(tool_call_id or "", None)
        if epoch is not None and epoch == self._epoch:
            return True
        self.stats.dropped += 1
        reason = "interrupted_before_start"
        self.stats.dropped_reasons[reason] = self.stats.dropped_reasons.get(reason, 0) + 1
        logger.info(f"tool call {function_name} dropped: {reason}")
        return False


def pipecat_handler(
    tool: AgentTool, guard: ToolGuard
) -> Callable[[FunctionCallParams], Awaitable[None]]:
    """The pipecat function-call handler of ``tool`` under ``guard``.

    A side-effecting tool first claims its start: if a barge-in came since the model asked
    for it, the handler does not run and the LLM is told. The result carries
    ``run_llm=tool.follow_up`` (``False`` for a refused call: the caller is talking, their
    next turn is answered instead).
    """

    async def handle(params: FunctionCallParams) -> None:
        if tool.side_effects and not guard.claim(params.tool_call_id, tool.name):
            await params.result_callback(
                {
                    "error": f"{tool.name} was not executed: the caller interrupted first",
                    "executed": False,
                },
                properties=FunctionCallResultProperties(run_llm=False),
            )
            return
        result = await tool.call(params.arguments, guard.stats)
        await params.result_callback(
            result, properties=FunctionCallResultProperties(run_llm=tool.follow_up)
        )

    return handle
