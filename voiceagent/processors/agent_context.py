"""The conversation as the caller experienced it: user utterances and only the agent text heard.

One ``CallContext`` per call, shared by the StabilityCommitRouter (adds committed user
turns, builds LLM requests) and whatever receives ``AgentHeardFrame`` (adds the heard part
of each agent turn). It wraps pipecat's ``LLMContext`` so pipecat LLM services consume it.
The system prompt normally lives on the LLM service (pipecat's ``system_instruction``); pass
``system_prompt`` only for services that need it inside the messages.

Tool calls of committed turns join it as OpenAI messages (an assistant message with
``tool_calls``, then one ``tool`` message per result; see ``ToolResultRelay``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.processors.aggregators.llm_context import LLMContext

INTERRUPTED_SUFFIX = "..."


@dataclass(frozen=True)
class ToolExchange:
    """One tool call the agent made and what it returned."""

    tool_call_id: str
    name: str
    arguments: Any
    result: Any


class CallContext:
    """Messages of one call: system prompt, committed user turns, heard agent turns."""

    def __init__(
        self, system_prompt: str | None = None, *, tools: ToolsSchema | None = None
    ) -> None:
        self._messages: list[dict] = []
        if system_prompt:
            self._messages.append({"role": "system", "content": system_prompt})
        self._tools = tools

    @property
    def tools(self) -> ToolsSchema | None:
        """The tools advertised with every LLM request built from this context."""
        return self._tools

    @tools.setter
    def tools(self, tools: ToolsSchema | None) -> None:
        self._tools = tools

    def _last_role(self) -> str | None:
        return self._messages[-1]["role"] if self._messages else None

    @property
    def messages(self) -> list[dict]:
        """The messages so far (do not mutate)."""
        return self._messages

    def add_user(self, text: str) -> None:
        """Append a committed caller utterance (merged with a directly preceding user message)."""
        text = text.strip()
        if not text:
            return
        if self._last_role() == "user":
            last = self._messages[-1]
            last["content"] = f"{last['content']} {text}"
        else:
            self._messages.append({"role": "user", "content": text})

    def add_agent_heard(self, text: str, *, interrupted: bool = False) -> None:
        """Append what the caller heard of an agent turn; an interrupted turn is marked cut off."""
        text = text.strip()
        if not text:
            return
        if interrupted:
            text = f"{text}{INTERRUPTED_SUFFIX}"
        last = self._messages[-1] if self._messages else None
        if last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
            last["content"] = f"{last['content']} {text}"
        else:
            self._messages.append({"role": "assistant", "content": text})

    def add_tool_calls(self, exchanges: Sequence[ToolExchange]) -> None:
        """Append tool calls of the agent and their results (arguments, results as JSON)."""
        if not exchanges:
            return
        calls = [
            {
                "id": x.tool_call_id,
                "type": "function",
                "function": {"name": x.name, "arguments": _json(x.arguments)},
            }
            for x in exchanges
        ]
        self._messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        for x in exchanges:
            self._messages.append(
                {"role": "tool", "tool_call_id": x.tool_call_id, "content": _json(x.result)}
            )

    def snapshot(self) -> tuple:
        """A hashable fingerprint of the messages, to check a speculation is still valid."""
        return tuple(
            (m["role"], m.get("content"), m.get("tool_call_id"), len(m.get("tool_calls", ())))
            for m in self._messages
        )

    def llm_context(self, pending_user_text: str | None = None) -> LLMContext:
        """A pipecat ``LLMContext`` for one request (a copy, optionally with pending user text)."""
        messages = copy.deepcopy(self._messages)
        if pending_user_text:
            if messages and messages[-1]["role"] == "user":
                messages[-1]["content"] = f"{messages[-1]['content']} {pending_user_text.strip()}"
            else:
                messages.append({"role": "user", "content": pending_user_text.strip()})
        if self._tools:
            return LLMContext(messages=messages, tools=self._tools)
        return LLMContext(messages=messages)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
