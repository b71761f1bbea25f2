"""Assemble the card's chain for one call from settings.

    TwilioSerializer → voice (VAD + sound onset) → [answering_machine] → [end_of_turn] → STT
    → [machine_words] → turns → LLM → SentenceAggregator → [voicemail] → TTS → CallHangUp
    → TwilioOutput

``build_call_processors`` returns the middle of that chain (the server adds the serializer and
the output of the call's transport). Users swap a stage by passing ``overrides`` — any stage name
mapped to a processor factory — or insert their own with ``extra``. A stage whose factory
returns None is left out (``end_of_turn`` unless ``turns.endpointing.end_of_turn_model``):
no do-nothing placeholders in the chain.

Caller audio goes as far as the STT; the turn engine (``TurnProcessor``) decides when the
agent replies, stops and goes on; the LLM's built-in speculation gate holds early replies.
The three answering machine stages (``voiceagent.processors.voicemail``) act on outbound calls
only; they are left out when ``telephony.machine_detection`` is off.

The chain is checked against the stage contracts (:mod:`voiceagent.pipelines.contracts`)
before it is returned: a swapped or inserted processor in the wrong place, or a provider
without what the chain needs, fails the build with a message naming it and the fix.

STT, LLM and TTS are each built from the stage's provider chain (``StageChoice.chain``): one
provider is built as is; several are wrapped in the stage's ``FallbackSwitcher``
(``voiceagent.processors.fallback_stages``), primary first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger
from pipecat.processors.frame_processor import FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.pipelines.contracts import check_chain
from voiceagent.pipelines.resources import AgentResources
from voiceagent.processors.caller_voice import CallerVoiceProcessor
from voiceagent.processors.end_of_turn import EndOfTurnDetector
from voiceagent.processors.fallback_stages import LLMFallback, STTFallback, TTSFallback
from voiceagent.processors.hang_up import CallHangUp
from voiceagent.processors.sentence_aggregator import SentenceAggregator
from voiceagent.processors.voicemail import (
    answering_machine_detector,
    machine_words,
    voicemail_responder,
)
from voiceagent.services.llm import create_llm_service
from voiceagent.settings import Settings
from voiceagent.transports.twilio.rest import TwilioRestClient
from voiceagent.turns.conversation import Conversation
from voiceagent.turns.processor import TurnProcessor

STAGES = (
    "voice",
    "answering_machine",
    "end_of_turn",
    "stt",
    "machine_words",
    "turns",
    "llm",
    "aggregator",
    "voicemail",
    "tts",
    "hang_up",
)

StageFactory = Callable[["CallParts"], FrameProcessor | None]


@dataclass
class CallParts:
    """What a stage factory may use to build its processor for one call."""

    settings: Settings
    resources: AgentResources
    conversation: Conversation
    clock: Clock
    processors: dict[str, FrameProcessor] = field(default_factory=dict)


def _voice(parts: CallParts) -> FrameProcessor:
    return CallerVoiceProcessor(parts.settings.turns.voice)


def _end_of_turn(parts: CallParts) -> FrameProcessor | None:
    return EndOfTurnDetector() if parts.settings.turns.endpointing.end_of_turn_model else None


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

        return create_deepgram_stt(res.settings.cloud, clock=parts.clock)
    from voiceagent.services.local.whisper_stt import WhisperStreamingSTT

    return WhisperStreamingSTT(
        transcriber=res.whisper, settings=parts.settings.local, clock=parts.clock
    )


def _turns(parts: CallParts) -> FrameProcessor:
    return TurnProcessor(
        options=parts.settings.turns,
        conversation=parts.conversation,
        greeting=parts.settings.agent.greeting,
        outbound_greeting=parts.settings.telephony.outbound_greeting,
        clock=parts.clock,
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
    res = parts.resources
    endpoint = res.llm_endpoint(provider)
    agent = parts.settings.agent
    local = provider == "local"
    return create_llm_service(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key,
        model=endpoint.model,
        max_tokens=agent.max_tokens,
        temperature=agent.temperature,
        system_instruction=agent.system_prompt,
        # "auto" tools are for the cloud: a local fallback must not write calls as speech.
        offer_tools=not local or agent.tools != "auto",
        # The local llama.cpp server keeps its cache one turn ahead (KV prefetch).
        prefetch=local and res.llama is not None and parts.settings.local.llm_prefetch,
        http_client=res.llm_http_client(),
    )


def _aggregator(parts: CallParts) -> FrameProcessor:
    return SentenceAggregator(first_chunk_min_words=parts.settings.turns.first_chunk_min_words)


def _tts(parts: CallParts) -> FrameProcessor:
    chain = [_tts_provider(parts, name) for name in parts.resources.choice.chain("tts")]
    if len(chain) == 1:
        return chain[0]
    return TTSFallback(chain, clock=parts.clock)


def _tts_provider(parts: CallParts, provider: str) -> FrameProcessor:
    res = parts.resources
    if provider == "deepgram":
        from voiceagent.services.deepgram import create_deepgram_tts

        return create_deepgram_tts(res.settings.cloud, res.http_session())
    from voiceagent.services.local.piper_tts import LocalPiperTTSService

    assert res.piper_paths is not None
    model, config = res.piper_paths
    return LocalPiperTTSService(
        model_path=model, config_path=config, voice=res.piper_voice, phrases=res.piper_phrases
    )


def _hang_up(parts: CallParts) -> FrameProcessor:
    return CallHangUp(
        rest=TwilioRestClient.from_settings(parts.settings),
        clock=parts.clock,
        max_wait_s=parts.settings.agent.end_call_max_wait_s,
    )


DEFAULT_STAGES: dict[str, StageFactory] = {
    "voice": _voice,
    "answering_machine": answering_machine_detector,
    "end_of_turn": _end_of_turn,
    "stt": _stt,
    "machine_words": machine_words,
    "turns": _turns,
    "llm": _llm,
    "aggregator": _aggregator,
    "voicemail": voicemail_responder,
    "tts": _tts,
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
        overrides: Replace a stage by name (see ``STAGES``) with a factory of ``CallParts``
            (a factory returning None leaves the stage out).
        extra: Processors to insert AFTER the named stage.

    Raises:
        ValueError: An unknown stage name.
        ChainContractError: The chain breaks a stage contract (a ``ValueError``; see
            :mod:`voiceagent.pipelines.contracts`): e.g. an LLM without ``VoiceLLMMixin``, a
            TTS that does not bracket its replies, an STT inserted after the turn engine.
    """
    overrides = overrides or {}
    unknown = set(overrides) - set(STAGES) | set(extra or {}) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown pipeline stage(s) {sorted(unknown)}; stages are {STAGES}")
    parts = CallParts(
        settings=settings, resources=resources, conversation=Conversation(), clock=clock
    )
    chain: list[FrameProcessor] = []
    for name in STAGES:
        processor = overrides.get(name, DEFAULT_STAGES[name])(parts)
        if processor is not None:
            parts.processors[name] = processor
            chain.append(processor)
        chain.extend((extra or {}).get(name, []))
    hang_up = parts.processors.get("hang_up")
    if isinstance(hang_up, CallHangUp) and hang_up.cue_via is None:
        hang_up.cue_via = parts.processors.get("llm")
    check_chain(chain)
    logger.debug(f"call pipeline: {' → '.join(type(p).__name__ for p in chain)}")
    return chain, parts
