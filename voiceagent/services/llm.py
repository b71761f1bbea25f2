"""One OpenAI-compatible streaming LLM service for the cloud and for the local llama.cpp server.

pipecat's ``OpenAILLMService`` already streams a completion per ``LLMContextFrame`` and, when its
processing task is cancelled, closes the HTTP response stream in a ``finally`` (the server sees the
client go away; llama.cpp stops generating at its next token). This subclass adds
``LLMCancelFrame``: the StabilityCommitRouter's way to withdraw a speculative generation without
an interruption reaching the rest of the pipeline (TTS, transport and context are untouched).

Order contract for the sender: push ``LLMCancelFrame`` *before* the ``LLMContextFrame`` that
replaces the cancelled one; queued context frames that are not yet running are dropped too.

Tools (``register_tools``) run under ``voiceagent.services.tools.ToolCallPolicy``: the service
reads the router's ``GenerationTagFrame`` and the speculation verdicts on their way through,
so side-effecting calls of a speculative generation wait for its commit and never run for a
generation that was discarded, cancelled or interrupted before they started.
"""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger
from openai import AsyncOpenAI, DefaultAsyncHttpxClient, Timeout
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    Frame,
    FunctionCallFromLLM,
    InterruptionFrame,
    LLMContextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.utils.http import connection_limits

from voiceagent.frames import LLMCancelFrame, SpeculationCommitFrame, SpeculationDiscardFrame
from voiceagent.processors.speculation_hold import GenerationTagFrame
from voiceagent.services.tools import (
    AgentTool,
    ToolCallPolicy,
    ToolRegistry,
    ToolStats,
    pipecat_handler,
)

# No key is needed by the local server; a placeholder keeps the OpenAI client from picking up
# OPENAI_API_KEY from the environment and sending a cloud key to a third-party endpoint.
_NO_KEY = "not-needed"


class VoiceLLMService(OpenAILLMService):
    """OpenAI-compatible streaming LLM (cloud or the local llama.cpp server): one code path.

    Frames in: ``LLMContextFrame`` (starts a generation), ``LLMCancelFrame`` (cancels it), and
    everything pipecat's LLM services handle. Frames out per generation:
    ``LLMFullResponseStartFrame``, ``LLMTextFrame``*, ``LLMFullResponseEndFrame`` (always, also
    after a cancel or a provider error; errors add an upstream ``ErrorFrame``).

    ``LLMCancelFrame`` cancels the running generation at once, closing its HTTP stream, and drops
    queued ``LLMContextFrame`` s, like an interruption does inside this processor, but pushes no
    ``InterruptionFrame``. The cancel frame itself is forwarded downstream afterwards.
    """

    def __init__(
        self,
        *,
        max_retries: int = 1,
        timeout_s: float = 30.0,
        offer_tools: bool = True,
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
            **kwargs: ``OpenAILLMService`` arguments (``api_key``, ``base_url``, ``settings``...).
        """
        self._max_retries = max_retries
        self._timeout_s = timeout_s
        self.offer_tools = offer_tools
        super().__init__(**kwargs)
        self.cancelled_generations = 0
        self._agent_tools: dict[str, AgentTool] = {}
        self.tool_policy = ToolCallPolicy(self._has_side_effects)

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
        """Counters of this call's tool calls (admitted, deferred, dropped by reason...)."""
        return self.tool_policy.stats

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
                pipecat_handler(tool, self.tool_policy),
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

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Cancel on ``LLMCancelFrame``; track generations for the tool policy; else pipecat."""
        policy = self.tool_policy
        if isinstance(frame, LLMCancelFrame):
            policy.on_cancel(frame.turn_id, frame.reason)
            await self._cancel_generation(frame)
        elif isinstance(frame, InterruptionFrame):
            policy.on_interruption()
        elif isinstance(frame, SpeculationDiscardFrame):
            policy.on_discard(frame.turn_id)
        elif isinstance(frame, SpeculationCommitFrame):
            released = policy.on_commit(frame.turn_id)
            if released:
                await super().run_function_calls(released)
        elif isinstance(frame, GenerationTagFrame):
            policy.on_tag(frame.turn_id, frame.speculative)
        elif isinstance(frame, LLMContextFrame):
            policy.begin_generation()
            try:
                await super().process_frame(frame, direction)
            finally:
                policy.end_generation()
            return
        await super().process_frame(frame, direction)

    async def run_function_calls(self, function_calls: Sequence[FunctionCallFromLLM]) -> None:
        """Run the calls the tool policy admits now (the rest wait for a commit or are dropped)."""
        await super().run_function_calls(self.tool_policy.admit(function_calls))

    async def _cancel_generation(self, frame: LLMCancelFrame) -> None:
        """Cancel and recreate the processing task, as pipecat's interruption does locally.

        Cancelling the task raises ``CancelledError`` inside the streaming loop; pipecat's
        ``finally`` blocks close the response stream and push ``LLMFullResponseEndFrame``.
        """
        logger.debug(f"{self}: cancelling generation of turn {frame.turn_id} ({frame.reason})")
        self.cancelled_generations += 1
        await self._start_interruption()
        await self.stop_all_metrics()


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
    )
