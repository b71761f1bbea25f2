"""One OpenAI-compatible streaming LLM service for the cloud and for the local llama.cpp server.

pipecat's ``OpenAILLMService`` already streams a completion per ``LLMContextFrame`` and, when its
processing task is cancelled, closes the HTTP response stream in a ``finally`` (the server sees the
client go away; llama.cpp stops generating at its next token). Speculation is pipecat's own:
``LLMContextFrame(speculation=True)`` starts an inference whose reply the service's speculation
gate holds until ``UserStoppedSpeakingFrame`` (the commit) releases it, and
``EagerEndOfTurnCancelFrame`` withdraws it (the stream is closed, the held reply dropped); a
speculative inference that asks for a tool is withdrawn by pipecat itself.

This subclass adds what a phone call needs on top: a withdrawal also drops a speculative request
still *queued* behind the running one (pipecat only stops the running inference), tools with
validated arguments whose side effects never run for a reply interrupted before the handler
started (``ToolGuard``), an option to not offer tools to a model that cannot call them, and
voice-friendly client retries and timeouts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from loguru import logger
from openai import AsyncOpenAI, DefaultAsyncHttpxClient, Timeout
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    FunctionCallFromLLM,
    InterruptionFrame,
    LLMContextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.utils.http import connection_limits

from voiceagent.frames import ConversationUpdatedFrame
from voiceagent.services.local.kv_prefetch import ContextPrefetcher
from voiceagent.services.tools import AgentTool, ToolGuard, ToolRegistry, ToolStats, pipecat_handler

# No key is needed by the local server; a placeholder keeps the OpenAI client from picking up
# OPENAI_API_KEY from the environment and sending a cloud key to a third-party endpoint.
_NO_KEY = "not-needed"
_SPEC_SEQ = "voiceagent.speculation_seq"


class VoiceLLMService(OpenAILLMService):
    """OpenAI-compatible streaming LLM (cloud or the local llama.cpp server): one code path.

    Frames in: ``LLMContextFrame`` (starts a generation; ``speculation=True`` holds its reply),
    ``UserStoppedSpeakingFrame`` (releases a held reply), ``EagerEndOfTurnCancelFrame``
    (withdraws a speculation, running or queued), ``InterruptionFrame``, and everything pipecat's
    LLM services handle. Frames out per generation: ``LLMFullResponseStartFrame``,
    ``LLMTextFrame``*, ``LLMFullResponseEndFrame`` (errors add an upstream ``ErrorFrame``).
    """

    def __init__(
        self,
        *,
        max_retries: int = 1,
        timeout_s: float = 30.0,
        offer_tools: bool = True,
        prefetch: bool = False,
        **kwargs,
    ) -> None:
        """Create the service.

        Args:
            max_retries: Retries of a failed request (connection error, 5xx, 429) by the OpenAI
                client before an ``ErrorFrame`` is pushed. Kept low: a caller is waiting.
            timeout_s: Read timeout of a request (connect timeout is 5 s).
            offer_tools: Whether the context's tools are sent to the model. False for a model
                that cannot call them (the local 0.5B writes calls as text, which would be
                spoken); registered handlers stay, so earlier calls in the context still read.
            prefetch: On ``ConversationUpdatedFrame`` have the server evaluate the conversation
                ahead of the caller's next turn (the local llama.cpp server's KV cache).
            **kwargs: ``OpenAILLMService`` arguments (``api_key``, ``base_url``, ``settings``...).
        """
        self._max_retries = max_retries
        self._timeout_s = timeout_s
        self.offer_tools = offer_tools
        super().__init__(**kwargs)
        self.withdrawn_queued = 0
        self._agent_tools: dict[str, AgentTool] = {}
        self.tool_guard = ToolGuard(self._has_side_effects)
        self._speculations = itertools.count(1)
        self._queued_spec = 0  # sequence number of the latest speculative request queued
        self._prefetcher: ContextPrefetcher | None = None
        if prefetch:
            base = kwargs.get("base_url") or ""
            settings = kwargs.get("settings")
            self._prefetcher = ContextPrefetcher(
                base_url=base,
                model=getattr(settings, "model", None) or "local",
                system_prompt=getattr(settings, "system_instruction", None),
            )
        self._void_upto = 0  # speculative requests up to this one were withdrawn

    def create_client(
        self,
        api_key=None,
        base_url=None,
        organization=None,
        project=None,
        default_headers=None,
        **kwargs,
    ) -> AsyncOpenAI:
        """An ``AsyncOpenAI`` client with voice-friendly retries and timeouts."""
        return AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            max_retries=self._max_retries,
            timeout=Timeout(self._timeout_s, connect=5.0),
            http_client=DefaultAsyncHttpxClient(
                limits=connection_limits(
                    max_keepalive_connections=10, max_connections=100, keepalive_expiry=None
                )
            ),
            default_headers=default_headers,
        )

    @property
    def tool_stats(self) -> ToolStats:
        """Counters of this call's tool calls (admitted, dropped by reason...)."""
        return self.tool_guard.stats

    def register_tools(self, tools: ToolRegistry | list[AgentTool]) -> ToolsSchema:
        """Register the tools' handlers under the tool policy; returns the context's schema.

        Read-only tools may be cancelled by a barge-in; side-effecting ones are registered
        with ``cancel_on_interruption=False``: once started they finish and report.
        """
        registry = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        for tool in registry:
            self._agent_tools[tool.name] = tool
            self.register_function(
                tool.name,
                pipecat_handler(tool, self.tool_guard),
                cancel_on_interruption=not tool.side_effects,
            )
        return registry.tools_schema()

    def build_chat_completion_params(self, params_from_context) -> dict:
        """The request parameters pipecat builds, without the tools when they are not offered."""
        params = super().build_chat_completion_params(params_from_context)
        if not self.offer_tools:
            params.pop("tools", None)
            params.pop("tool_choice", None)
        return params

    def _has_async_tools(self) -> bool:
        """Never: pipecat's async-tool guidance does not apply to voiceagent's tools.

        Side-effecting tools are registered with ``cancel_on_interruption=False`` so a started
        booking finishes, which pipecat reads as "the conversation moves on without the
        result" and appends instructions for that to the system prompt. Here the agent waits
        for every result (``ToolResultRelay`` answers with it), so the prompt stays as set.
        """
        return False

    def _has_side_effects(self, name: str) -> bool:
        tool = self._agent_tools.get(name)
        if tool is not None:
            return tool.side_effects
        # A function registered some other way is assumed to have side effects; a call of
        # an unknown function only gets pipecat's "not available" result.
        return self.has_function(name)

    async def queue_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM, callback=None
    ):
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
        await super().queue_frame(frame, direction, callback)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Skip withdrawn speculative requests; guard tools against interruptions; else pipecat."""
        if isinstance(frame, ConversationUpdatedFrame):
            context = frame.context
            if self._prefetcher is not None and context is not None and not context.tools:
                self._prefetcher.schedule(list(context.messages))
        elif isinstance(frame, EagerEndOfTurnCancelFrame | InterruptionFrame):
            self.tool_guard.interrupted()
        elif (
            isinstance(frame, LLMContextFrame)
            and frame.speculation
            and frame.metadata.get(_SPEC_SEQ, 0) <= self._void_upto
        ):
            self.withdrawn_queued += 1
            logger.debug(f"{self}: skipping a speculative request withdrawn while queued")
            return
        await super().process_frame(frame, direction)

    async def cleanup(self) -> None:
        """Stop a running prefetch; then pipecat's cleanup."""
        if self._prefetcher is not None:
            await self._prefetcher.close()
        await super().cleanup()

    async def run_function_calls(self, function_calls: Sequence[FunctionCallFromLLM]) -> None:
        """Note when the model asked for each call (a later barge-in drops side effects)."""
        self.tool_guard.admit(function_calls)
        await super().run_function_calls(function_calls)


def create_llm_service(
    *,
    base_url: str | None,
    api_key: str | None,
    model: str,
    max_tokens: int,
    temperature: float,
    system_instruction: str | None = None,
    max_retries: int = 1,
    offer_tools: bool = True,
    prefetch: bool = False,
) -> VoiceLLMService:
    """Build the LLM service for OpenAI itself (``base_url=None``) or any compatible server.

    Args:
        base_url: An OpenAI-compatible ``.../v1`` URL (e.g. ``LlamaServer.base_url``), or None for
            api.openai.com.
        api_key: The provider's key; optional for a ``base_url`` (the local server needs none).
        model: Model name (any name is accepted by the local server).
        max_tokens: Reply length cap (sent as ``max_completion_tokens`` to OpenAI itself, as
            ``max_tokens`` to compatible servers, which may not know the newer field).
        temperature: Sampling temperature.
        system_instruction: System prompt applied by the service (pipecat 1.14 prefers this to a
            system message in the context; both render the same prompt prefix).
        max_retries: Client retries of a failed request before an ``ErrorFrame``.
        offer_tools: Whether tools in the context are sent to the model (see the service).
        prefetch: Pre-evaluate the conversation after each heard agent turn (local server).

    Raises:
        ValueError: Cloud OpenAI without an API key, or non-positive ``max_tokens``.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    if base_url is None and not api_key:
        logger.error("OpenAI LLM selected but no OPENAI_API_KEY is configured")
        raise ValueError("an OpenAI API key is required when no base_url is given")
    if base_url is None:
        settings = VoiceLLMService.Settings(
            model=model, temperature=temperature, max_completion_tokens=max_tokens
        )
    else:
        settings = VoiceLLMService.Settings(
            model=model, temperature=temperature, max_tokens=max_tokens
        )
    if system_instruction is not None:
        settings.system_instruction = system_instruction
    return VoiceLLMService(
        api_key=api_key or _NO_KEY,
        base_url=base_url,
        settings=settings,
        max_retries=max_retries,
        offer_tools=offer_tools,
        prefetch=prefetch and base_url is not None,
    )
