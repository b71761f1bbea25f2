"""Settings on pydantic-settings: offline defaults, env overrides, and every typo or bad value
stopping startup with one line naming the environment variable."""

import os
import subprocess
import sys

import pytest

from voiceagent.cli import main
from voiceagent.pipelines.resources import choose_stages
from voiceagent.settings import Settings, SettingsError


def problems(environ: dict[str, str], **overrides) -> list[str]:
    with pytest.raises(SettingsError) as failed:
        Settings.from_env(environ, **overrides)
    return failed.value.problems


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
            "TWILIO_ACCOUNT_SID": "AC1",
            "TWILIO_FROM_NUMBER": "+15550100100",
            "DEEPGRAM_API_KEY": "dg",
            "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
            "PUBLIC_HOST": "agent.example.com",
        }
    )
    assert settings.server.port == 9000 and settings.turns.voice.min_volume == 0.3
    assert settings.local.llm_model == "qwen2.5-1.5b"
    assert settings.server.twilio_auth_token == "secret"
    assert settings.twilio.account_sid == "AC1"
    assert settings.telephony.from_number == "+15550100100"
    assert settings.cloud.openai_base_url == "http://127.0.0.1:8000/v1"
    assert settings.server.public_host == "agent.example.com"
    choice = choose_stages(settings)
    assert (choice.stt, choice.llm, choice.tts) == ("deepgram", "openai", "deepgram")


def test_a_voiceagent_variable_wins_over_the_provider_variable_and_empty_ones_are_unset():
    settings = Settings.from_env(
        {
            "TWILIO_AUTH_TOKEN": "from-twilio",
            "VOICEAGENT_SERVER__TWILIO_AUTH_TOKEN": "from-voiceagent",
            "DEEPGRAM_API_KEY": "",
        }
    )
    assert settings.server.twilio_auth_token == "from-voiceagent"
    assert settings.cloud.deepgram_api_key is None


def test_keyword_overrides_win_over_the_environment_and_merge_with_it():
    settings = Settings.from_env(
        {"VOICEAGENT_SERVER__PORT": "9000", "VOICEAGENT_SERVER__HOST": "0.0.0.0"},
        server={"port": 0},
        turns={"endpointing": {"max_wait_s": 3.0}},
        agent=None,
    )
    assert settings.server.port == 0 and settings.server.host == "0.0.0.0"
    assert settings.turns.endpointing.max_wait_s == 3.0


def test_settings_read_the_process_environment_and_survive_a_json_round_trip(monkeypatch):
    monkeypatch.setenv("VOICEAGENT_SERVER__MAX_CALLS", "7")
    monkeypatch.setenv("VOICEAGENT_FALLBACK__TTS", "")
    settings = Settings(stt="local")
    assert settings.server.max_calls == 7 and settings.fallback.tts == []
    assert Settings.model_validate_json(settings.model_dump_json()) == settings  # serve --workers


def test_comma_lists_and_name_value_maps_from_the_environment():
    settings = Settings.from_env(
        {
            "VOICEAGENT_FALLBACK__STT": "local, deepgram",
            "VOICEAGENT_AGENT__TOOLS": "check_availability,end_call",
            "VOICEAGENT_TELEPHONY__TRANSFER_TARGETS": "front desk=+15550100123",
        }
    )
    assert settings.fallback.stt == ["local", "deepgram"]
    assert settings.agent.tools == ["check_availability", "end_call"]
    assert settings.telephony.transfer_targets == {"front desk": "+15550100123"}
    assert Settings.from_env({"VOICEAGENT_AGENT__TOOLS": "false"}).agent.tools is False


def test_the_answering_machine_thresholds_are_typed_settings():
    settings = Settings.from_env(
        {
            "VOICEAGENT_TELEPHONY__ANSWERING_MACHINE__GREETING_START_S": "2.5",
            "VOICEAGENT_TELEPHONY__ANSWERING_MACHINE__BEEP__MIN_HZ": "800",
        }
    )
    assert settings.telephony.answering_machine.greeting_start_s == 2.5
    assert settings.telephony.answering_machine.beep.min_hz == 800.0
    # Before, these lived in an untyped dict and failed on every outbound call instead.
    assert problems({"VOICEAGENT_TELEPHONY__ANSWERING_MACHINE__PAUSE_S": "-1"}) == [
        "VOICEAGENT_TELEPHONY__ANSWERING_MACHINE__PAUSE_S=-1: must be greater than 0.0"
    ]
    assert problems({"VOICEAGENT_TELEPHONY__ANSWERING_MACHINE__BEEP__MIN_HERTZ": "800"}) == [
        "VOICEAGENT_TELEPHONY__ANSWERING_MACHINE__BEEP__MIN_HERTZ: unknown setting "
        "(did you mean VOICEAGENT_TELEPHONY__ANSWERING_MACHINE__BEEP__MIN_HZ?)"
    ]


# ----- a typo or bad value: one line, named by the environment variable --------------------------


def test_a_typo_at_the_top_level_is_refused():
    assert problems({"VOICEAGENT_STTT": "local"}) == [
        "VOICEAGENT_STTT: unknown setting (did you mean VOICEAGENT_STT?)"
    ]


def test_a_typo_two_levels_deep_is_refused():
    assert problems({"VOICEAGENT_SERVER__PROT": "9000"}) == [
        "VOICEAGENT_SERVER__PROT: unknown setting (did you mean VOICEAGENT_SERVER__PORT?)"
    ]


def test_a_typo_three_levels_deep_is_refused():
    assert problems({"VOICEAGENT_TURNS__ENDPOINTING__MIN_SILNCE_S": "0.9"}) == [
        "VOICEAGENT_TURNS__ENDPOINTING__MIN_SILNCE_S: unknown setting "
        "(did you mean VOICEAGENT_TURNS__ENDPOINTING__MIN_SILENCE_S?)"
    ]


def test_an_unknown_section_is_refused():
    assert problems({"VOICEAGENT_SERVR__PORT": "9"}) == [
        "VOICEAGENT_SERVR__PORT: unknown setting (did you mean VOICEAGENT_SERVER__PORT?)"
    ]


def test_an_unknown_voiceagent_variable_is_refused_but_the_test_suites_own_are_not():
    assert problems({"VOICEAGENT_COLOUR_SCHEME": "dark"}) == [
        "VOICEAGENT_COLOUR_SCHEME: unknown setting"
    ]
    assert problems({"VOICEAGENT_STT__MODEL": "nova-3"}) == [
        "VOICEAGENT_STT__MODEL: unknown setting"  # stt is a value: it has no parts
    ]
    Settings.from_env({"VOICEAGENT_TEST_POSTGRES_URL": "postgresql://t@h/db"})


def test_a_bad_value_is_named_with_its_value_and_the_reason():
    assert problems({"VOICEAGENT_SERVER__PORT": "abc"}) == [
        "VOICEAGENT_SERVER__PORT=abc: must be an integer"
    ]
    assert problems({"VOICEAGENT_LOCAL__LLM_MODEL": "gpt-99"}) == [
        "VOICEAGENT_LOCAL__LLM_MODEL=gpt-99: must be 'qwen2.5-0.5b' or 'qwen2.5-1.5b'"
    ]
    assert problems({"VOICEAGENT_PHONE__ENABLED": "maybe"}) == [
        "VOICEAGENT_PHONE__ENABLED=maybe: must be true or false"
    ]
    assert problems({"VOICEAGENT_FALLBACK__LLM": "claude"}) == [
        "VOICEAGENT_FALLBACK__LLM=claude: must be 'local' or 'openai'"
    ]


def test_a_negative_value_where_it_must_be_positive_is_refused():
    assert problems({"VOICEAGENT_TURNS__ENDPOINTING__MAX_WAIT_S": "-3"}) == [
        "VOICEAGENT_TURNS__ENDPOINTING__MAX_WAIT_S=-3: must be greater than 0.0"
    ]
    assert problems({"VOICEAGENT_SERVER__MAX_CALLS": "0"}) == [
        "VOICEAGENT_SERVER__MAX_CALLS=0: must be at least 1"
    ]


def test_a_check_across_fields_names_the_variables_set():
    assert problems(
        {
            "VOICEAGENT_TURNS__ENDPOINTING__MIN_SILENCE_S": "1.5",
            "VOICEAGENT_TURNS__ENDPOINTING__MAX_SILENCE_S": "1.0",
        }
    ) == [
        "VOICEAGENT_TURNS__ENDPOINTING__MAX_SILENCE_S=1.0, "
        "VOICEAGENT_TURNS__ENDPOINTING__MIN_SILENCE_S=1.5: max_silence_s must be >= min_silence_s"
    ]


def test_every_problem_is_said_once_and_secrets_are_masked():
    found = problems(
        {
            "VOICEAGENT_SERVR__PORT": "9",
            "VOICEAGENT_SERVER__PORT": "abc",
            "VOICEAGENT_STORAGE__URL": "mysql://agent:hunter2@db.internal/calls",
            "VOICEAGENT_TURNS__ENDPOINTING__MIN_SILNCE_S": "0.9",
        }
    )
    assert len(found) == len(set(found)) == 4, found
    assert "VOICEAGENT_SERVER__PORT=abc: must be an integer" in found
    url_line = next(line for line in found if line.startswith("VOICEAGENT_STORAGE__URL"))
    assert "hunter2" not in url_line and "mysql://agent:****@db.internal/calls" in url_line


def test_a_bad_value_given_in_code_is_named_by_its_path():
    assert problems({}, server={"port": 70000}) == ["server.port=70000: must be at most 65535"]
    assert problems({}, servr={"port": 1}) == ["servr: unknown setting"]


def test_a_validators_own_message_names_the_variable_once():
    assert problems({"OPENAI_BASE_URL": "localhost:8000/v1"}) == [
        "OPENAI_BASE_URL 'localhost:8000/v1' must start with http:// or https:// and name a "
        "host, e.g. https://api.openai.com/v1"
    ]


def test_a_value_that_must_be_json_says_so():
    [line] = problems({"VOICEAGENT_TELEPHONY__ANSWERING_MACHINE__WORDING": "leave a message"})
    assert line.startswith(
        "VOICEAGENT_TELEPHONY__ANSWERING_MACHINE__WORDING=leave a message: must be JSON"
    )


def test_a_cloud_stage_without_its_key_is_refused():
    with pytest.raises(ValueError, match="DEEPGRAM_API_KEY"):
        choose_stages(Settings.from_env({"VOICEAGENT_STT": "deepgram"}))


# ----- the command line stops at startup ---------------------------------------------------------


def test_serve_stops_at_startup_naming_the_variable_once():
    env = {
        **os.environ,
        "VOICEAGENT_TURNS__ENDPOINTING__MIN_SILNCE_S": "0.9",
        "VOICEAGENT_SERVER__PORT": "abc",
    }
    run = subprocess.run(
        [sys.executable, "-m", "voiceagent.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        "error: VOICEAGENT_SERVER__PORT=abc: must be an integer",
        "error: VOICEAGENT_TURNS__ENDPOINTING__MIN_SILNCE_S: unknown setting "
        "(did you mean VOICEAGENT_TURNS__ENDPOINTING__MIN_SILENCE_S?)",
    ]


@pytest.mark.parametrize(
    "argv",
    [["demo"], ["demo", "--browser"], ["eval"], ["dial", "--to", "+15550100199"], ["config"]],
    ids=lambda argv: " ".join(argv),
)
def test_every_command_reading_settings_stops_at_startup(argv, monkeypatch, capfd):
    monkeypatch.setenv("VOICEAGENT_SERVR__PORT", "9")
    assert main(argv) == 2
    out, err = capfd.readouterr()
    assert err == (
        "error: VOICEAGENT_SERVR__PORT: unknown setting (did you mean VOICEAGENT_SERVER__PORT?)\n"
    )
