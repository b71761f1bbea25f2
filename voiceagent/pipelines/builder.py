"""Assemble the card's chain for one call from settings.

    TwilioSerializer → VAD → CallerSoundDetector → [EndOfTurnDetector] → STT
    → AnsweringMachineDetector → BargeInGate → StabilityCommitRouter → SilenceWatchdog
    → ToolResultRelay → LLM → SpeculationHold → SentenceAggregator → [greeting]
    → VoicemailResponder → TTS → FloorHold → CallHangUp → TwilioOutput

``build_call_processors`` returns the middle of that chain (the server adds the serializer and
the output of the call's transport). Users swap a stage by passing ``overrides`` — any stage name
mapped to a processor factory — or insert their own with ``extra``.

STT, LLM and TTS are each built from the stage's provider chain (``StageChoice.chain``): one
provider is built as is; several are wrapped in the stage's ``FallbackSwitcher``
(``voiceagent.processors.fallback_stages``), primary first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import Frame, TTSSpeakFrame
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.frames import CallStartedFrame
from voiceagent.pipelines.resources import AgentResources
from voiceagent.processors.agent_context import CallContext
from voiceagent.processors.barge_in import BargeInGate
from voiceagent.processors.caller_sound import CallerSoundDetector, CallerSoundParams
from voiceagent.processors.commit_policy import RouterParams
from voiceagent.processors.end_of_turn import EndOfTurnDetector
from voiceagent.processors.fallback_stages import LLMFallback, STTFallback, TTSFallback
from voiceagent.processors.floor_hold import FloorHold
from voiceagent.processors.hang_up import CallHangUp
from voiceagent.processors.interruption_policy import BargeInParams
from voiceagent.processors.sentence_aggregator import SentenceAggregator
from voiceagent.processors.speculation_hold import SpeculationHold
from voiceagent.processors.stability_router import StabilityCommitRouter
from voiceagent.processors.tool_results import ToolResultRelay
from voiceagent.processors.voicemail import (
    answering_machine_detector,
    voicemail_responder,
)
from voiceagent.processors.watchdog import SilenceWatchdog, WatchdogParams
from voiceagent.services.llm import create_llm_service
from voiceagent.settings import Settings
from voiceagent.transports.twilio.rest import TwilioRestClient

STAGES = (
    "vad",
    "caller_sound",
    "end_of_turn",
    "stt",
    "answering_machine",
    "barge_in",
    "prefetch",
    "router",
    "watchdog",
    "tools",
    "llm",
    "hold",
    "aggregator",
    "greeter",
    "voicemail",
    "tts",
    "floor",
    "hang_up",
)

StageFactory = Callable[["CallParts"], FrameProcessor]


class AgentGreeter(FrameProcessor):
    """Speaks the greeting when the call starts (its heard part joins the context like any turn).

    On a call the agent placed (stream parameter ``Direction=outbound-api``) it says
    ``outbound_greeting`` instead, when one is given.
    """

    def __init__(self, greeting: str, outbound_greeting: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._greeting = greeting
        self._outbound_greeting = outbound_greeting

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Forward everything; after ``CallStartedFrame`` queue the greeting."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, CallStartedFrame):
            outbound = frame.custom_parameters.get("Direction") == "outbound-api"
            greeting = self._outbound_greeting if outbound else ""
            greeting = greeting or self._greeting
            if greeting:
                await self.push_frame(TTSSpeakFrame(greeting))


@dataclass
class CallParts:
    """What a stage factory may use to build its processor for one call."""

    settings: Settings
    resources: AgentResources
    context: CallContext
    clock: Clock
    processors: dict[str, FrameProcessor] = field(default_factory=dict)


def _vad(parts: CallParts) -> FrameProcessor:
    turns = parts.settings.turns
    return VADProcessor(
        vad_analyzer=SileroVADAnalyzer(
            params=VADParams(
                confidence=turns.vad_confidence,
                start_secs=turns.vad_start_s,
                stop_secs=turns.vad_stop_s,
                min_volume=turns.vad_min_volume,
            )
        ),
    )


def _aggregator(parts: CallParts) -> FrameProcessor:
    return SentenceAggregator(first_chunk_min_words=parts.settings.turns.first_chunk_min_words)


def _stt(parts: CallParts) -> FrameProcessor:
    chain = [_stt_provider(parts, name) for name in parts.resources.choice.chain("stt")]
    if len(chain) == 1:
        return chain[0]
    fallback = parts.settings.fallback
    return STTFallback(chain, timeout_s=fallback.stt_timeout_s, clock=parts.clock)


def _stt_provider(parts: CallParts, provider: str) -> FrameProcessor:
    res = parts.resources
    if provider == "deepgram":
        from voiceagent.services.deepgram import create_deepgram_stt

        return create_deepgram_stt(res.settings.cloud)
    from voiceagent.services.local.whisper_stt import WhisperStreamingSTT

    return WhisperStreamingSTT(
        transcriber=res.whisper, settings=parts.settings.local, clock=parts.clock
    )


def _prefetch(parts: CallParts) -> FrameProcessor:
    """The local LLM's cache kept one turn ahead (``KVPrefetch``), when the local LLM answers."""
    res = parts.resources
    if res.choice.llm != "local" or res.llama is None or not parts.settings.local.llm_prefetch:
        return IdentityFilter()
    from voiceagent.services.local.kv_prefetch import KVPrefetch

    endpoint = res.llm_endpoint("local")
    return KVPrefetch(
        parts.context,
        base_url=endpoint.base_url or "",
        model=endpoint.model,
        system_prompt=parts.settings.agent.system_prompt,
    )


def _llm(parts: CallParts) -> FrameProcessor:
    chain = [_llm_provider(parts, name) for name in parts.resources.choice.chain("llm")]
    if len(chain) == 1:
        return chain[0]
    fallback = parts.settings.fallback
    return LLMFallback(
        chain,
        first_token_timeout_s=fallback.llm_first_token_timeout_s,
        apology_text=fallback.apology_text,
        clock=parts.clock,
    )


def _llm_provider(parts: CallParts, provider: str) -> FrameProcessor:
    endpoint = parts.resources.llm_endpoint(provider)
    agent = parts.settings.agent
    return create_llm_service(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key,
        model=endpoint.model,
        max_tokens=agent.max_tokens,
        temperature=agent.temperature,
        system_instruction=agent.system_prompt,
        # "auto" tools are for the cloud: a local fallback must not write calls as speech.
        offer_tools=provider != "local" or agent.tools != "auto",
    )


def _tts(parts: CallParts) -> FrameProcessor:
    chain = [_tts_provider(parts, name) for name in parts.resources.choice.chain("tts")]
    if len(chain) == 1:
        return chain[0]
    return TTSFallback(chain, clock=parts.clock)


def _tts_provider(parts: CallParts, provider: str) -> FrameProcessor:
    res = parts.resources
    if provider == "deepgram":
        from voiceagent.services.deepgram import create_deepgram_tts

        return create_deepgram_tts(res.settings.cloud)
    from voiceagent.services.local.piper_tts import LocalPiperTTSService

    assert res.piper_paths is not None
    model, config = res.piper_paths
    return LocalPiperTTSService(model_path=model, config_path=config, voice=res.piper_voice)


def _deferred_tool_calls(parts: CallParts, turn_id: int) -> int:
    """Side-effecting calls of ``turn_id`` waiting for its commit, on any LLM of the stage."""
    llm = parts.processors.get("llm")
    services = getattr(llm, "services", None) or [llm]
    policies = [getattr(s, "tool_policy", None) for s in services]
    return sum(p.deferred_calls(turn_id) for p in policies if p is not None)


def _hang_up(parts: CallParts) -> FrameProcessor:
    return CallHangUp(
        rest=TwilioRestClient.from_settings(parts.settings),
        clock=parts.clock,
        max_wait_s=parts.settings.agent.end_call_max_wait_s,
    )


DEFAULT_STAGES: dict[str, StageFactory] = {
    "vad": _vad,
    "caller_sound": lambda p: (
        CallerSoundDetector(CallerSoundParams(**p.settings.turns.caller_sound))
        if p.settings.turns.floor_hold
        else IdentityFilter()
    ),
    "end_of_turn": lambda p: (
        EndOfTurnDetector() if p.settings.turns.end_of_turn_model else IdentityFilter()
    ),
    "stt": _stt,
    "answering_machine": answering_machine_detector,
    "barge_in": lambda p: BargeInGate(
        params=BargeInParams(**p.settings.turns.barge_in), clock=p.clock
    ),
    "prefetch": _prefetch,
    "router": lambda p: StabilityCommitRouter(
        p.context, params=RouterParams(**p.settings.turns.router), clock=p.clock
    ),
    "watchdog": lambda p: SilenceWatchdog(
        p.context, params=WatchdogParams(**p.settings.turns.watchdog), clock=p.clock
    ),
    "tools": lambda p: ToolResultRelay(
        p.context, deferred_calls=lambda turn_id: _deferred_tool_calls(p, turn_id)
    ),
    "llm": _llm,
    "hold": lambda p: SpeculationHold(),
    "aggregator": _aggregator,
    "greeter": lambda p: AgentGreeter(
        p.settings.agent.greeting, p.settings.telephony.outbound_greeting
    ),
    "voicemail": voicemail_responder,
    "tts": _tts,
    "floor": lambda p: (
        FloorHold(max_hold_s=p.settings.turns.floor_max_hold_s, clock=p.clock)
        if p.settings.turns.floor_hold
        else IdentityFilter()
    ),
    "hang_up": _hang_up,
}


def build_call_processors(
    settings: Settings,
    resources: AgentResources,
    *,
    clock: Clock = DEFAULT_CLOCK,
    overrides: dict[str, StageFactory] | None = None,
    extra: dict[str, list[FrameProcessor]] | None = None,
) -> tuple[list[FrameProcessor], CallParts]:
    """Build one call's processors (between the transport's serializer and output).

    Args:
        settings: The configuration.
        resources: Shared loaded models/servers.
        clock: Time source for turn logic.
        overrides: Replace a stage by name (see ``STAGES``) with a factory of ``CallParts``.
        extra: Processors to insert AFTER the named stage.
    """
    overrides = overrides or {}
    unknown = set(overrides) - set(STAGES) | set(extra or {}) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown pipeline stage(s) {sorted(unknown)}; stages are {STAGES}")
    parts = CallParts(
        settings=settings,
        resources=resources,
        context=CallContext(),
        clock=clock,
    )
    chain: list[FrameProcessor] = []
    for name in STAGES:
        factory = overrides.get(name, DEFAULT_STAGES[name])
        processor = factory(parts)
        parts.processors[name] = processor
        chain.append(processor)
        chain.extend((extra or {}).get(name, []))
    logger.debug(f"call pipeline: {' → '.join(type(p).__name__ for p in chain)}")
    return chain, parts
