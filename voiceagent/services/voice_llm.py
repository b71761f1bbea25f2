"""``VoiceLLMMixin``: what a phone call needs of any pipecat LLM service, on top of pipecat.

Pipecat's ``LLMService`` already holds a speculative reply (``LLMContextFrame(speculation=True)``)
until ``UserStoppedSpeakingFrame`` and withdraws the *running* one on
``EagerEndOfTurnCancelFrame``; it also withdraws a speculation that asks for a tool. Mix this in
before any pipecat LLM service class (``class MyLLM(VoiceLLMMixin, AnthropicLLMService)``) to add:

- a withdrawal also voids speculative requests still *queued* behind a running generation
  (pipecat would run them later and hold their replies until the next commit released them —
  the wrong reply);
- agent tools (``register_tools``) with validated arguments whose side effects never run for a
  reply interrupted between the model asking and the handler starting (``ToolGuard``).

Frames in: ``LLMContextFrame``, ``UserStoppedSpeakingFrame``, ``EagerEndOfTurnCancelFrame``,
``InterruptionFrame`` and everything the service handles. Frames out: the service's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from loguru import logger
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    FunctionCallFromLLM,
    InterruptionFrame,
    LLMContextFrame,
)
from pipecat.processors.frame_processor import FrameCallback, FrameDirection

from voiceagent.services.tools import AgentTool, ToolGuard, ToolRegistry, ToolStats, pipecat_handler

_SPEC_SEQ = "voiceagent.speculation_seq"


class VoiceLLMMixin:
    """Queued-speculation withdrawal and guarded agent tools for a pipecat ``LLMService``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.withdrawn_queued = 0
        """Speculative requests voided while still queued."""
        self._agent_tools: dict[str, AgentTool] = {}
        self.tool_guard = ToolGuard(self._has_side_effects)
        self._speculations = itertools.count(1)
        self._queued_spec = 0  # sequence number of the latest speculative request queued
        self._void_upto = 0  # speculative requests up to this one were withdrawn

    @property
    def tool_stats(self) -> ToolStats:
        """Counters of this call's tool calls (admitted, dropped by reason...)."""
        return self.tool_guard.stats

    def register_tools(self, tools: ToolRegistry | list[AgentTool]) -> ToolsSchema:
        """Register the tools' handlers under the guard; returns the context's schema.

        Read-only tools may be cancelled by a barge-in; side-effecting ones are registered
        with ``cancel_on_interruption=False``: once started they finish and report.
        """
        registry = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        for tool in registry:
            self._agent_tools[tool.name] = tool
            self.register_function(  # type: ignore[attr-defined]
                tool.name,
                pipecat_handler(tool, self.tool_guard),
                cancel_on_interruption=not tool.side_effects,
            )
        return registry.tools_schema()

    def _has_side_effects(self, name: str) -> bool:
        tool = self._agent_tools.get(name)
        if tool is not None:
            return tool.side_effects
        # A function registered some other way is assumed to have side effects; a call of
        # an unknown function only gets pipecat's "not available" result.
        return bool(self.has_function(name))  # type: ignore[attr-defined]

    async def queue_frame(
        self,
        frame: Frame,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        callback: FrameCallback | None = None,
    ) -> None:
        """Number speculative requests as they arrive; a withdrawal voids those before it.

        Done on arrival, not when processed: the withdrawal is a system frame that overtakes
        the queue, and must not void the request that was sent right after it.
        """
        if isinstance(frame, LLMContextFrame) and frame.speculation:
            self._queued_spec = next(self._speculations)
            frame.metadata[_SPEC_SEQ] = self._queued_spec
        elif (
            isinstance(frame, EagerEndOfTurnCancelFrame) and direction is FrameDirection.DOWNSTREAM
        ):
            self._void_upto = self._queued_spec
        await super().queue_frame(frame, direction, callback)  # type: ignore[misc]

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Skip withdrawn speculative requests; guard tools against interruptions."""
        if isinstance(frame, EagerEndOfTurnCancelFrame | InterruptionFrame):
            self.tool_guard.interrupted()
        elif (
            isinstance(frame, LLMContextFrame)
            and frame.speculation
            and frame.metadata.get(_SPEC_SEQ, 0) <= self._void_upto
        ):
            self.withdrawn_queued += 1
            logger.debug(f"{self}: skipping a speculative request withdrawn while queued")
            return
        await super().process_frame(frame, direction)  # type: ignore[misc]

    async def run_function_calls(self, function_calls: Sequence[FunctionCallFromLLM]) -> None:
        """Note when the model asked for each call (a later barge-in drops side effects)."""
        self.tool_guard.admit(function_calls)
        await super().run_function_calls(function_calls)  # type: ignore[misc]
