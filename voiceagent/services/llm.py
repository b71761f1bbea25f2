"""One OpenAI-compatible streaming LLM service for the cloud and for the local llama.cpp server.

pipecat's ``OpenAILLMService`` already streams a completion per ``LLMContextFrame`` and, when its
processing task is cancelled, closes the HTTP response stream in a ``finally`` (the server sees the
client go away; llama.cpp stops generating at its next token). Speculation is pipecat's own:
``LLMContextFrame(speculation=True)`` starts an inference whose reply the service's speculation
gate holds until ``UserStoppedSpeakingFrame`` (the commit) releases it, and
``EagerEndOfTurnCancelFrame`` withdraws it (the stream is closed, the held reply dropped); a
speculative inference that asks for a tool is withdrawn by pipecat itself.

``VoiceLLMService`` is ``VoiceLLMMixin`` (queued speculations withdrawn too, guarded agent
tools: usable with any pipecat LLM service) on pipecat's OpenAI service, plus what an
OpenAI-compatible endpoint needs: an option to not offer tools to a model that cannot call them,
the local server's KV prefetch, and voice-friendly client retries and timeouts.
"""

from __future__ import annotations

import httpx
from loguru import logger
from openai import AsyncOpenAI, DefaultAsyncHttpxClient, Timeout
from pipecat.frames.frames import (
    Frame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.utils.http import connection_limits

from voiceagent.frames import ConversationUpdatedFrame
from voiceagent.services.local.kv_prefetch import ContextPrefetcher
from voiceagent.services.voice_llm import VoiceLLMMixin

# No key is needed by the local server; a placeholder keeps the OpenAI client from picking up
# OPENAI_API_KEY from the environment and sending a cloud key to a third-party endpoint.
_NO_KEY = "not-needed"
_SPEC_SEQ = "voiceagent.speculation_seq"


class VoiceLLMService(VoiceLLMMixin, OpenAILLMService):
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
        http_client: httpx.AsyncClient | None = None,
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
            http_client: The HTTP client to send requests with, e.g. one shared by every call
                of the process (:func:`shared_http_client`); default: one of the service's own.
            **kwargs: ``OpenAILLMService`` arguments (``api_key``, ``base_url``, ``settings``...).
        """
        self._max_retries = max_retries
        self._timeout_s = timeout_s
        self._http_client = http_client
        self.offer_tools = offer_tools
        super().__init__(**kwargs)
        self._prefetcher: ContextPrefetcher | None = None
        if prefetch:
            base = kwargs.get("base_url") or ""
            settings = kwargs.get("settings")
            self._prefetcher = ContextPrefetcher(
                base_url=base,
                model=getattr(settings, "model", None) or "local",
                system_prompt=getattr(settings, "system_instruction", None),
            )

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
            http_client=self._http_client
            or DefaultAsyncHttpxClient(
                limits=connection_limits(
                    max_keepalive_connections=10, max_connections=100, keepalive_expiry=None
                )
            ),
            default_headers=default_headers,
        )

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

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Prefetch the conversation for the local server; the rest is the mixin's and pipecat's."""
        if isinstance(frame, ConversationUpdatedFrame):
            context = frame.context
            if self._prefetcher is not None and context is not None and not context.tools:
                self._prefetcher.schedule(list(context.messages))
        await super().process_frame(frame, direction)

    async def cleanup(self) -> None:
        """Stop a running prefetch; then pipecat's cleanup."""
        if self._prefetcher is not None:
            await self._prefetcher.close()
        await super().cleanup()


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
    http_client: httpx.AsyncClient | None = None,
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
        http_client: Send requests with this client (e.g. :func:`shared_http_client`); default:
            a client of the service's own.

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
        http_client=http_client,
    )


def shared_http_client() -> httpx.AsyncClient:
    """An HTTP client for the LLM services of every call in a process (close it when done).

    A client of its own per call cost each call's start an SSL context (the CA bundle read
    and parsed on the event loop) and new connections to the provider; a shared one keeps
    them alive from call to call. Its pool is sized for many calls' streams at once.
    """
    return DefaultAsyncHttpxClient(
        limits=connection_limits(
            max_keepalive_connections=100, max_connections=1000, keepalive_expiry=None
        )
    )
