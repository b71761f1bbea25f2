"""voiceagent: real-time phone voice agents on Twilio Media Streams, built on pipecat-ai.

The pieces a user composes, importable from here (each loaded on first use)::

    from voiceagent import Settings, TurnTaking, build_call_processors, run_server

- configuration: ``Settings`` (every section), ``SettingsError`` (what a bad value raises),
  ``TurnTaking`` (turn-taking options);
- the call chain: ``build_call_processors``, ``STAGES``, ``CallParts``, ``AgentResources``,
  ``check_chain`` / ``ChainContractError`` (the stage contracts, checked on every build);
- the server: ``run_server``, ``create_app``;
- processors (pipecat ``FrameProcessor`` s; each docstring states its frame contract):
  ``TurnProcessor`` (the turn engine), ``CallerVoiceProcessor`` (VAD + sound onset),
  ``SentenceAggregator``, ``CallHangUp``;
- the decision core: ``TurnEngine``, ``Conversation``;
- services: ``VoiceLLMService`` / ``create_llm_service``, ``VoiceLLMMixin`` (for any pipecat
  LLM service), ``VoiceTTSService`` / ``VoiceTTSMixin`` (the base of a new TTS provider),
  ``VoiceDeepgramSTTService`` / ``create_deepgram_stt``, ``create_deepgram_tts``;
  tools: ``AgentTool``, ``ToolRegistry``;
- the Twilio transport: ``TwilioCall``, ``TwilioSerializer``, ``TwilioOutput`` (voiceagent's
  server); ``TwilioFrameSerializer`` + ``TwilioMarks`` (pipecat's own WebSocket transports, with
  marks and the heard ledger);
- telephony: ``place_call`` (an outbound call), ``transfer_call`` (a cold transfer), ``EndReason``
  (how a call ended), ``TwilioRestClient`` / ``TwilioRestError`` (Twilio's REST API, named
  errors), ``AnsweringMachineDetector`` / ``VoicemailResponder`` (answering machines);
- frames shared by the stages: ``AudioSpan``, ``SpokenWord``, ``set_audio_span``,
  ``audio_span``, ``AgentHeardFrame``, ``UserTurnCommittedFrame``, ``CallerSoundFrame``,
  ``PlaybackPauseFrame``, ``PlaybackResumeFrame``, ``TurnMetricsFrame``, ``TurnCountsFrame``.

The library configures no logging: its loguru messages are disabled until the application
enables them (``logger.enable("voiceagent")``); the ``voiceagent`` command does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loguru import logger

__version__ = "0.1.0"

logger.disable("voiceagent")

_EXPORTS = {
    "Settings": "voiceagent.settings",
    "SettingsError": "voiceagent.settings",
    "TurnTaking": "voiceagent.turns.options",
    "build_call_processors": "voiceagent.pipelines.builder",
    "STAGES": "voiceagent.pipelines.builder",
    "CallParts": "voiceagent.pipelines.builder",
    "AgentResources": "voiceagent.pipelines.resources",
    "check_chain": "voiceagent.pipelines.contracts",
    "ChainContractError": "voiceagent.pipelines.contracts",
    "run_server": "voiceagent.server.app",
    "create_app": "voiceagent.server.app",
    "TurnProcessor": "voiceagent.turns.processor",
    "TurnEngine": "voiceagent.turns.engine",
    "Conversation": "voiceagent.turns.conversation",
    "CallerVoiceProcessor": "voiceagent.processors.caller_voice",
    "SentenceAggregator": "voiceagent.processors.sentence_aggregator",
    "CallHangUp": "voiceagent.processors.hang_up",
    "VoiceLLMService": "voiceagent.services.llm",
    "create_llm_service": "voiceagent.services.llm",
    "VoiceLLMMixin": "voiceagent.services.voice_llm",
    "VoiceTTSService": "voiceagent.services.tts",
    "VoiceTTSMixin": "voiceagent.services.tts",
    "VoiceDeepgramSTTService": "voiceagent.services.deepgram",
    "create_deepgram_stt": "voiceagent.services.deepgram",
    "create_deepgram_tts": "voiceagent.services.deepgram",
    "AgentTool": "voiceagent.services.tools",
    "ToolRegistry": "voiceagent.services.tools",
    "TwilioCall": "voiceagent.transports.twilio.call",
    "TwilioSerializer": "voiceagent.transports.twilio.serializer",
    "TwilioOutput": "voiceagent.transports.twilio.output",
    "TwilioFrameSerializer": "voiceagent.transports.twilio.frame_serializer",
    "TwilioMarks": "voiceagent.transports.twilio.marks",
    "AudioSpan": "voiceagent.frames",
    "SpokenWord": "voiceagent.frames",
    "set_audio_span": "voiceagent.frames",
    "audio_span": "voiceagent.frames",
    "AgentHeardFrame": "voiceagent.frames",
    "UserTurnCommittedFrame": "voiceagent.frames",
    "CallerSoundFrame": "voiceagent.frames",
    "PlaybackPauseFrame": "voiceagent.frames",
    "PlaybackResumeFrame": "voiceagent.frames",
    "TurnMetricsFrame": "voiceagent.frames",
    "TurnCountsFrame": "voiceagent.frames",
    "place_call": "voiceagent.telephony.dial",
    "transfer_call": "voiceagent.telephony.transfer",
    "EndReason": "voiceagent.telephony.end_reason",
    "TwilioRestClient": "voiceagent.transports.twilio.rest",
    "TwilioRestError": "voiceagent.transports.twilio.rest",
    "AnsweringMachineDetector": "voiceagent.processors.voicemail",
    "VoicemailResponder": "voiceagent.processors.voicemail",
}

__all__ = [
    "__version__",
    "Settings",
    "SettingsError",
    "TurnTaking",
    "build_call_processors",
    "STAGES",
    "CallParts",
    "AgentResources",
    "check_chain",
    "ChainContractError",
    "run_server",
    "create_app",
    "TurnProcessor",
    "TurnEngine",
    "Conversation",
    "CallerVoiceProcessor",
    "SentenceAggregator",
    "CallHangUp",
    "VoiceLLMService",
    "create_llm_service",
    "VoiceLLMMixin",
    "VoiceTTSService",
    "VoiceTTSMixin",
    "VoiceDeepgramSTTService",
    "create_deepgram_stt",
    "create_deepgram_tts",
    "AgentTool",
    "ToolRegistry",
    "TwilioCall",
    "TwilioSerializer",
    "TwilioOutput",
    "TwilioFrameSerializer",
    "TwilioMarks",
    "AudioSpan",
    "SpokenWord",
    "set_audio_span",
    "audio_span",
    "AgentHeardFrame",
    "UserTurnCommittedFrame",
    "CallerSoundFrame",
    "PlaybackPauseFrame",
    "PlaybackResumeFrame",
    "TurnMetricsFrame",
    "TurnCountsFrame",
    "place_call",
    "transfer_call",
    "EndReason",
    "TwilioRestClient",
    "TwilioRestError",
    "AnsweringMachineDetector",
    "VoicemailResponder",
]


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (importing voiceagent stays cheap)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'voiceagent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from voiceagent.frames import (
        AgentHeardFrame,
        AudioSpan,
        CallerSoundFrame,
        PlaybackPauseFrame,
        PlaybackResumeFrame,
        SpokenWord,
        TurnCountsFrame,
        TurnMetricsFrame,
        UserTurnCommittedFrame,
        audio_span,
        set_audio_span,
    )
    from voiceagent.pipelines.builder import STAGES, CallParts, build_call_processors
    from voiceagent.pipelines.contracts import ChainContractError, check_chain
    from voiceagent.pipelines.resources import AgentResources
    from voiceagent.processors.caller_voice import CallerVoiceProcessor
    from voiceagent.processors.hang_up import CallHangUp
    from voiceagent.processors.sentence_aggregator import SentenceAggregator
    from voiceagent.processors.voicemail import AnsweringMachineDetector, VoicemailResponder
    from voiceagent.server.app import create_app, run_server
    from voiceagent.services.deepgram import (
        VoiceDeepgramSTTService,
        create_deepgram_stt,
        create_deepgram_tts,
    )
    from voiceagent.services.llm import VoiceLLMService, create_llm_service
    from voiceagent.services.tools import AgentTool, ToolRegistry
    from voiceagent.services.tts import VoiceTTSMixin, VoiceTTSService
    from voiceagent.services.voice_llm import VoiceLLMMixin
    from voiceagent.settings import Settings, SettingsError
    from voiceagent.telephony.dial import place_call
    from voiceagent.telephony.end_reason import EndReason
    from voiceagent.telephony.transfer import transfer_call
    from voiceagent.transports.twilio.call import TwilioCall
    from voiceagent.transports.twilio.frame_serializer import TwilioFrameSerializer
    from voiceagent.transports.twilio.marks import TwilioMarks
    from voiceagent.transports.twilio.output import TwilioOutput
    from voiceagent.transports.twilio.rest import TwilioRestClient, TwilioRestError
    from voiceagent.transports.twilio.serializer import TwilioSerializer
    from voiceagent.turns.conversation import Conversation
    from voiceagent.turns.engine import TurnEngine
    from voiceagent.turns.options import TurnTaking
    from voiceagent.turns.processor import TurnProcessor
