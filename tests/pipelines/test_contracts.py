"""Stage contracts: a chain in the wrong order, or with a provider lacking what the call needs,
is refused when it is built, with a message naming the processor and the fix (one test per rule).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
from pipecat.frames.frames import Frame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService

from voiceagent.pipelines.builder import build_call_processors
from voiceagent.pipelines.contracts import ChainContractError, check_chain, contract_problems
from voiceagent.pipelines.resources import AgentResources
from voiceagent.processors.caller_voice import CallerVoiceProcessor
from voiceagent.processors.end_of_turn import EndOfTurnDetector
from voiceagent.processors.fallback_stages import LLMFallback, TTSFallback
from voiceagent.processors.hang_up import CallHangUp
from voiceagent.processors.machine_words import MachineWords
from voiceagent.processors.sentence_aggregator import SentenceAggregator
from voiceagent.processors.voicemail import AnsweringMachineDetector
from voiceagent.services.llm import create_llm_service
from voiceagent.services.tts import VoiceTTSService
from voiceagent.settings import Settings
from voiceagent.turns.processor import TurnProcessor


class TinySTT(STTService):
    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        yield None  # type: ignore[misc]


class PlainTTS(TTSService):
    """A TTS written the Pipecat way on pipecat's own base: no start/stop frames."""

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        yield TTSAudioRawFrame(b"\x00\x00" * 160, 16000, 1, context_id=context_id)


class VoiceTTS(VoiceTTSService):
    """The same TTS on voiceagent's base."""

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        yield TTSAudioRawFrame(b"\x00\x00" * 160, 16000, 1, context_id=context_id)


class Mine(FrameProcessor):
    """A processor of the user's own: never refused."""


def voice_llm():
    return create_llm_service(
        base_url="http://127.0.0.1:9/v1", api_key="k", model="m", max_tokens=20, temperature=0
    )


def plain_llm():
    return OpenAILLMService(api_key="k", base_url="http://127.0.0.1:9/v1")


def good_chain(**swap) -> list[FrameProcessor]:
    stages = {
        "voice": CallerVoiceProcessor(),
        "stt": TinySTT(),
        "turns": TurnProcessor(),
        "llm": voice_llm(),
        "aggregator": SentenceAggregator(),
        "tts": VoiceTTS(),
        "hang_up": CallHangUp(),
    }
    stages.update(swap)
    return [p for p in stages.values() if p is not None]


def test_the_card_chain_and_processors_of_your_own_pass():
    chain = good_chain()
    chain.insert(3, Mine())
    assert contract_problems(chain) == []
    check_chain(chain)


def test_a_chain_needs_exactly_one_turn_engine():
    with pytest.raises(ChainContractError, match="no turn engine"):
        check_chain(good_chain(turns=None))
    chain = good_chain()
    chain.insert(4, TurnProcessor())
    with pytest.raises(ChainContractError, match="second turn engine"):
        check_chain(chain)


def test_caller_audio_stages_must_come_before_the_turn_engine():
    chain = good_chain()
    chain.insert(3, TinySTT())  # an STT right after the turn engine
    with pytest.raises(ChainContractError, match=r"TinySTT \(#4.*must come before the turn"):
        check_chain(chain)


def test_the_end_of_turn_model_must_follow_the_vad():
    chain = good_chain()
    chain.insert(0, EndOfTurnDetector())
    with pytest.raises(ChainContractError, match="EndOfTurnDetector .* must follow the VAD"):
        check_chain(chain)


def test_answering_machine_detection_surrounds_the_stt():
    chain = good_chain()
    chain.insert(2, AnsweringMachineDetector())  # after the STT
    chain.insert(1, MachineWords())  # before it
    problems = contract_problems(chain)
    assert any("AnsweringMachineDetector" in p and "before the STT" in p for p in problems)
    assert any("MachineWords" in p and "after the STT" in p for p in problems)


def test_the_llm_must_follow_the_turn_engine():
    chain = good_chain()
    llm = chain.pop(3)
    chain.insert(1, llm)
    with pytest.raises(ChainContractError, match="must come after the turn engine"):
        check_chain(chain)


def test_an_llm_must_support_cancellation_of_speculative_replies():
    with pytest.raises(ChainContractError) as refused:
        check_chain(good_chain(llm=plain_llm()))
    message = str(refused.value)
    assert message.startswith("OpenAILLMService (#4 in the chain) must support cancellation")
    assert "class VoiceOpenAILLMService(VoiceLLMMixin, OpenAILLMService)" in message
    fallback = LLMFallback([voice_llm(), plain_llm()])  # every provider of the chain counts
    with pytest.raises(ChainContractError, match="must support cancellation"):
        check_chain(good_chain(llm=fallback))


def test_the_aggregator_sits_between_the_llm_and_the_tts():
    chain = good_chain()
    aggregator = chain.pop(4)
    chain.insert(5, aggregator)  # after the TTS
    with pytest.raises(ChainContractError, match="must sit between the LLM and the TTS"):
        check_chain(chain)


def test_a_tts_must_bracket_its_replies():
    with pytest.raises(ChainContractError) as refused:
        check_chain(good_chain(tts=PlainTTS()))
    assert "PlainTTS (#6 in the chain) pushes no TTSStartedFrame/TTSStoppedFrame" in str(
        refused.value
    )
    assert "VoiceTTSService" in str(refused.value)
    with pytest.raises(ChainContractError, match="TTSFallback .*: its PlainTTS pushes no"):
        check_chain(good_chain(tts=TTSFallback([VoiceTTS(), PlainTTS()])))
    # Told explicitly, on pipecat's own base, it is fine.
    check_chain(good_chain(tts=PlainTTS(push_start_frame=True, push_stop_frames=True)))


def test_the_tts_must_follow_the_llm():
    chain = good_chain()
    tts = chain.pop(5)
    chain.insert(3, tts)  # between the turn engine and the LLM
    problems = contract_problems(chain)
    assert any("VoiceTTS" in p and "must come after the LLM" in p for p in problems)


def test_the_hang_up_stage_must_follow_the_tts():
    chain = good_chain()
    hang_up = chain.pop()
    chain.insert(4, hang_up)
    with pytest.raises(ChainContractError, match="CallHangUp .* must come after the TTS"):
        check_chain(chain)


def test_the_builder_refuses_a_chain_that_breaks_a_contract():
    settings = Settings.from_env({})
    resources = AgentResources(settings)
    providers = {
        "stt": lambda parts: TinySTT(),
        "llm": lambda parts: voice_llm(),
        "tts": lambda parts: VoiceTTS(),
    }
    build_call_processors(settings, resources, overrides=providers)  # fine as it is
    with pytest.raises(ValueError, match="must support cancellation"):
        build_call_processors(
            settings, resources, overrides={**providers, "llm": lambda parts: plain_llm()}
        )
    with pytest.raises(ValueError, match="TinySTT .* must come before the turn engine"):
        build_call_processors(
            settings, resources, overrides=providers, extra={"turns": [TinySTT()]}
        )
