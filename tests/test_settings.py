"""Typed settings: offline defaults, env overrides, clear errors; stage choice per provider key."""

import pytest

from voiceagent.pipelines.resources import choose_stages
from voiceagent.settings import Settings


def test_defaults_work_offline_and_choose_the_local_stack():
    settings = Settings.from_env({})
    assert settings.server.host == "127.0.0.1" and settings.server.twilio_auth_token is None
    choice = choose_stages(settings)
    assert (choice.stt, choice.llm, choice.tts) == ("local", "local", "local")
    assert any("offline default" in reason for reason in choice.reasons)


def test_env_overrides_nested_fields_and_well_known_keys():
    settings = Settings.from_env(
        {
            "VOICEAGENT_SERVER__PORT": "9000",
            "VOICEAGENT_TURNS__VOICE__MIN_VOLUME": "0.3",
            "VOICEAGENT_LOCAL__LLM_MODEL": "qwen2.5-1.5b",
            "TWILIO_AUTH_TOKEN": "secret",
            "DEEPGRAM_API_KEY": "dg",
        }
    )
    assert settings.server.port == 9000 and settings.turns.voice.min_volume == 0.3
    assert settings.local.llm_model == "qwen2.5-1.5b"
    assert settings.server.twilio_auth_token == "secret"
    choice = choose_stages(settings)
    assert (choice.stt, choice.llm, choice.tts) == ("deepgram", "local", "deepgram")


def test_keyword_overrides_win_over_the_environment():
    settings = Settings.from_env({"VOICEAGENT_SERVER__PORT": "9000"}, server={"port": 0})
    assert settings.server.port == 0


def test_wrong_configuration_names_the_field():
    with pytest.raises(ValueError, match="port"):
        Settings.from_env({"VOICEAGENT_SERVER__PORT": "not-a-port"})
    with pytest.raises(ValueError, match="llm_model"):
        Settings.from_env({"VOICEAGENT_LOCAL__LLM_MODEL": "gpt-99"})


def test_a_cloud_stage_without_its_key_is_refused():
    with pytest.raises(ValueError, match="DEEPGRAM_API_KEY"):
        choose_stages(Settings.from_env({"VOICEAGENT_STT": "deepgram"}))
