"""Provider chains from settings: cloud keys put the local stage behind the cloud one."""

from __future__ import annotations

import pytest
from pipecat.services.deepgram.tts import DeepgramHttpTTSService

from voiceagent.pipelines.builder import build_call_processors
from voiceagent.pipelines.resources import AgentResources, LLMEndpoint, choose_stages
from voiceagent.processors.fallback_stages import LLMFallback, STTFallback
from voiceagent.services.deepgram import VoiceDeepgramSTTService
from voiceagent.services.llm import VoiceLLMService
from voiceagent.settings import Settings

KEYS = {"DEEPGRAM_API_KEY": "dg", "OPENAI_API_KEY": "sk-test"}


def test_no_keys_no_fallback_the_offline_default_is_unchanged():
    choice = choose_stages(Settings.from_env({}))
    assert [choice.chain(s) for s in ("stt", "llm", "tts")] == [["local"]] * 3
    assert not any("fallback" in reason for reason in choice.reasons)


def test_with_cloud_keys_the_local_stage_is_the_fallback():
    choice = choose_stages(Settings.from_env(KEYS))
    assert choice.chain("stt") == ["deepgram", "local"]
    assert choice.chain("llm") == ["openai", "local"]
    assert choice.chain("tts") == ["deepgram", "local"]
    assert "stt fallback: deepgram → local" in choice.reasons


def test_chains_are_configurable_from_the_environment():
    env = {
        **KEYS,
        "VOICEAGENT_FALLBACK__STT": "",
        "VOICEAGENT_FALLBACK__TTS": "local",
        "VOICEAGENT_LLM": "local",
        "VOICEAGENT_FALLBACK__LLM": "openai",
        "VOICEAGENT_FALLBACK__STT_TIMEOUT_S": "1.5",
    }
    settings = Settings.from_env(env)
    choice = choose_stages(settings)
    assert choice.chain("stt") == ["deepgram"]  # fallback turned off
    assert choice.chain("tts") == ["deepgram", "local"]
    assert choice.chain("llm") == ["local", "openai"]  # the cloud behind the local model
    assert settings.fallback.stt_timeout_s == 1.5


def test_a_cloud_fallback_without_its_key_is_refused():
    with pytest.raises(ValueError, match="fallback tts=deepgram needs DEEPGRAM_API_KEY"):
        choose_stages(Settings.from_env({"VOICEAGENT_FALLBACK__TTS": "deepgram"}))
    with pytest.raises(ValueError, match="VOICEAGENT_FALLBACK__LLM=claude"):
        Settings.from_env({"VOICEAGENT_FALLBACK__LLM": "claude"})


async def test_the_builder_wires_the_chains_with_the_configured_endpoints():
    env = {
        **KEYS,
        "VOICEAGENT_CLOUD__DEEPGRAM_URL": "ws://127.0.0.1:9",
        "VOICEAGENT_FALLBACK__TTS": "",
    }
    settings = Settings.from_env(env, fallback={"llm_first_token_timeout_s": 2.0})
    resources = AgentResources(settings)
    resources.llm_endpoints["local"] = LLMEndpoint("http://127.0.0.1:8/v1", "local", "qwen")
    _, parts = build_call_processors(settings, resources)
    stt, llm, tts = (parts.processors[name] for name in ("stt", "llm", "tts"))
    assert isinstance(stt, STTFallback) and stt.timeout_s == 2.5
    assert [type(s).__name__ for s in stt.services] == [
        "VoiceDeepgramSTTService",
        "WhisperStreamingSTT",
    ]
    assert isinstance(stt.services[0], VoiceDeepgramSTTService)
    assert isinstance(llm, LLMFallback) and llm.first_token_timeout_s == 2.0
    assert all(isinstance(s, VoiceLLMService) for s in llm.services)
    assert [str(s._client.base_url) for s in llm.services][1] == "http://127.0.0.1:8/v1/"
    assert llm.apology_text == settings.fallback.apology_text
    assert isinstance(tts, DeepgramHttpTTSService)  # its fallback was turned off
    assert tts._base_url == "http://127.0.0.1:9"


def test_a_local_fallback_llm_must_be_started_first():
    settings = Settings.from_env(KEYS, fallback={"stt": [], "tts": []})
    with pytest.raises(ValueError, match="not started"):
        build_call_processors(settings, AgentResources(settings))
