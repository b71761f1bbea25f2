"""A caller's turn handed to an LLM stage, and the agent's reply read back (LLM call scripts)."""

from __future__ import annotations

import socket
from collections.abc import Callable

from pipecat.frames.frames import LLMContextFrame, LLMFullResponseEndFrame, LLMTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext

from .harness import LivePipeline


def caller_turn(text: str, *, speculation: bool = False) -> LLMContextFrame:
    """The caller's committed (or, with ``speculation``, speculative) turn as the LLM gets it."""
    messages = [{"role": "user", "content": text}]
    return LLMContextFrame(context=LLMContext(messages=messages), speculation=speculation)


def reply_text(pipe: LivePipeline) -> str:
    """Every word the LLM stage sent down, joined."""
    return "".join(f.text for f in pipe.down_of(LLMTextFrame))


def ended(pipe: LivePipeline, count: int = 1) -> Callable[[], bool]:
    """Whether ``count`` replies have ended (for ``pipe.wait_for``)."""
    return lambda: len(pipe.down_of(LLMFullResponseEndFrame)) >= count


def dead_url() -> str:
    """An OpenAI-compatible base URL on a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
