"""Agent tools and when they may run: read-only at once, side effects only for committed turns.

An ``AgentTool`` is a name, a description, a pydantic model of its ``arguments``, an async
handler taking the validated model, and ``side_effects``: ``book_appointment`` and
``end_call`` change the world, ``lookup_hours`` only reads it. The model is the one source of
truth: the JSON schema the LLM is offered is generated from it (``model_json_schema()``) and
the LLM's arguments are validated by it. A ``ToolRegistry`` holds the call's tools and produces
the schema for ``LLMContext(tools=...)`` (a pipecat ``ToolsSchema``; ``openai_tools()`` gives
the same tools as OpenAI dicts, e.g. for ``LlamaServer.warm_up``).
``VoiceLLMService.register_tools`` registers the handlers.

Invalid arguments never reach the handler: the LLM gets an ``{"error": ...}`` result naming
each problem instead, and a handler that raises does too. No exception escapes to pipecat.

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
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import FunctionCallFromLLM, FunctionCallResultProperties
from pipecat.services.llm_service import FunctionCallParams
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema

ArgumentsT = TypeVar("ArgumentsT", bound=BaseModel)

ToolHandler = Callable[[ArgumentsT], Awaitable[Any]]
"""A tool's implementation: its validated arguments model in, a JSON-serializable result out."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_ARMED = 64


class NoArguments(BaseModel):
    """The arguments of a tool that takes none (anything the LLM sends is ignored)."""


class _ToolJsonSchema(GenerateJsonSchema):
    """Pydantic's JSON schema without titles: the LLM reads the schema on every request."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        """No ``title`` beside each property (the property's name says it)."""
        return False

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        """The model's schema, without the model's own title."""
        out = super().generate(schema, mode)
        out.pop("title", None)
        return out


def arguments_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments, generated from their pydantic model.

    Nested models are inlined: pipecat's ``FunctionSchema`` carries ``properties`` and
    ``required`` only, so the ``$defs`` pydantic puts beside them would be lost (pydantic has no
    option to inline them itself).

    Raises:
        ValueError: the model refers to itself (a recursive schema cannot be inlined).
    """
    schema = model.model_json_schema(schema_generator=_ToolJsonSchema)
    defs = schema.pop("$defs", {})

    def inline(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in seen:
                raise ValueError(f"{model.__name__}: recursive model {name} cannot be a tool's")
            target = {k: v for k, v in defs[name].items() if k != "title"}
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return inline({**target, **rest}, (*seen, name))
        return {key: inline(value, seen) for key, value in node.items()}

    return inline(schema, ())


def argument_problems(error: ValidationError) -> list[str]:
    """Each problem of a validation error as ``where: what`` (``who.age: Input should be…``)."""
    problems = []
    for item in error.errors(include_url=False):
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"]
        ).lstrip(".")
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return problems


@dataclass(frozen=True)
class AgentTool(Generic[ArgumentsT]):
    """One tool the agent may call.

    Attributes:
        name: Function name the LLM calls (``[A-Za-z0-9_-]``, at most 64 characters).
        description: What it does, for the LLM.
        arguments: The pydantic model of its arguments: the LLM is offered its JSON schema
            (field descriptions included) and what the LLM sends is validated by it.
        handler: ``async (arguments) -> result``, given the validated model; the result must
            be JSON-serializable (it goes back to the LLM).
        side_effects: True when a call changes the world (booking, hanging up). Such calls
            run only for committed, still-alive generations and are never cancelled once
            started.
        follow_up: Whether the LLM answers again once the result is in (sent as pipecat's
            ``FunctionCallResultProperties.run_llm``). False for ``end_call``: the goodbye
            is said before the call, nothing follows it.
        parameters: The generated JSON schema of ``arguments`` (what the LLM is offered).
    """

    name: str
    description: str
    arguments: type[ArgumentsT]
    handler: ToolHandler[ArgumentsT]
    side_effects: bool
    follow_up: bool = True
    parameters: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"invalid tool name {self.name!r}")
        if not (isinstance(self.arguments, type) and issubclass(self.arguments, BaseModel)):
            raise TypeError(f"{self.name}: arguments must be a pydantic model class")
        object.__setattr__(self, "parameters", arguments_schema(self.arguments))

    def function_schema(self) -> FunctionSchema:
        """The pipecat schema advertising this tool (without a handler: it is registered)."""
        return FunctionSchema(
            name=self.name,
            description=self.description,
            properties=dict(self.parameters.get("properties", {})),
            required=list(self.parameters.get("required", [])),
        )

    def validate(self, arguments: Any) -> tuple[ArgumentsT | None, list[str]]:
        """The validated arguments (None if invalid) and the list of problems found."""
        try:
            return self.arguments.model_validate(arguments), []
        except ValidationError as e:
            return None, argument_problems(e)

    async def call(self, arguments: Any, stats: ToolStats | None = None) -> Any:
        """Validate and run; invalid arguments and handler failures become error results."""
        args, problems = self.validate(arguments)
        if args is None:
            logger.warning(f"tool {self.name}: invalid arguments {arguments!r}: {problems}")
            if stats is not None:
                stats.invalid_arguments += 1
            return {
                "error": f"invalid arguments for {self.name}: " + "; ".join(problems),
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

    def __init__(self, tools: Iterable[AgentTool[Any]] = ()) -> None:
        self._tools: dict[str, AgentTool[Any]] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: AgentTool[Any]) -> None:
        """Add a tool; names must be unique."""
        if tool.name in self._tools:
            raise ValueError(f"duplicate tool name {tool.name!r}")
        self._tools[tool.name] = tool

    def get(self, name: str) -> AgentTool[Any] | None:
        """The tool called ``name``, if any."""
        return self._tools.get(name)

    def __iter__(self) -> Iterator[AgentTool[Any]]:
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
    tool: AgentTool[Any], guard: ToolGuard
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
