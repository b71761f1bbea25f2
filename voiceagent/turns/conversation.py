"""The conversation as the caller experienced it: caller turns and only the agent text heard.

One ``Conversation`` per call, owned by the turn engine. It is kept as entries (caller turns
by id, heard agent speech, tool exchanges) and rendered to OpenAI-style messages on demand,
so a late revision of a caller turn replaces that turn's words in place, and consecutive
caller turns (a continuation after a mid-sentence pause) render as one user message.
``llm_context`` wraps the messages in pipecat's ``LLMContext`` for any pipecat LLM service.
The system prompt normally lives on the LLM service (pipecat's ``system_instruction``).

Speech the agent makes outside the conversation (a re-prompt such as "Are you still
there?") is never added: the model would take it as an example and repeat it.
"""

from __future__ import annotations

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


@dataclass
class _Entry:
    role: str  # "user" | "assistant" | "tools"
    text: str = ""
    turn_id: int | None = None
    exchanges: tuple[ToolExchange, ...] = ()


class Conversation:
    """Entries of one call: system prompt, caller turns, heard agent speech, tool exchanges."""

    def __init__(
        self, system_prompt: str | None = None, *, tools: ToolsSchema | None = None
    ) -> None:
        self._system = system_prompt
        self._entries: list[_Entry] = []
        self.tools = tools
        """The tools advertised with every LLM request built from this conversation."""
        self.version = 0
        """Bumped on every change: a speculation made on an older version is stale."""

    def add_user(self, turn_id: int, text: str) -> None:
        """Append a committed caller turn."""
        text = text.strip()
        if text:
            self._entries.append(_Entry("user", text, turn_id))
            self.version += 1

    def revise_user(self, turn_id: int, text: str) -> bool:
        """Replace the words of caller turn ``turn_id`` (a fuller late transcript of it)."""
        for entry in reversed(self._entries):
            if entry.role == "user" and entry.turn_id == turn_id:
                if entry.text != text.strip():
                    entry.text = text.strip()
                    self.version += 1
                return True
        return False

    def add_agent_heard(self, text: str, *, interrupted: bool = False) -> None:
        """Append what the caller heard of an agent turn; an interrupted turn is marked cut off."""
        text = text.strip()
        if not text:
            return
        if interrupted:
            text = f"{text}{INTERRUPTED_SUFFIX}"
        self._entries.append(_Entry("assistant", text))
        self.version += 1

    def add_tool_calls(self, exchanges: Sequence[ToolExchange]) -> None:
        """Append tool calls of the agent and their results."""
        if exchanges:
            self._entries.append(_Entry("tools", exchanges=tuple(exchanges)))
            self.version += 1

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation as OpenAI chat messages (a fresh list; no system message)."""
        out: list[dict[str, Any]] = []
        for entry in self._entries:
            if entry.role == "tools":
                out.append({"role": "assistant", "content": None, "tool_calls": _calls(entry)})
                out.extend(
                    {"role": "tool", "tool_call_id": x.tool_call_id, "content": _json(x.result)}
                    for x in entry.exchanges
                )
                continue
            last = out[-1] if out else None
            if last is not None and last["role"] == entry.role and not last.get("tool_calls"):
                last["content"] = f"{last['content']} {entry.text}"
            else:
                out.append({"role": entry.role, "content": entry.text})
        return out

    def llm_context(self, pending_user_text: str | None = None) -> LLMContext:
        """A pipecat ``LLMContext`` for one request, optionally with not-yet-committed words."""
        messages = self.messages
        if self._system:
            messages.insert(0, {"role": "system", "content": self._system})
        pending = (pending_user_text or "").strip()
        if pending:
            if messages and messages[-1]["role"] == "user":
                messages[-1]["content"] = f"{messages[-1]['content']} {pending}"
            else:
                messages.append({"role": "user", "content": pending})
        if self.tools:
            return LLMContext(messages=messages, tools=self.tools)
        return LLMContext(messages=messages)


def _calls(entry: _Entry) -> list[dict[str, Any]]:
    return [
        {
            "id": x.tool_call_id,
            "type": "function",
            "function": {"name": x.name, "arguments": _json(x.arguments)},
        }
        for x in entry.exchanges
    ]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
