"""The eval runner against the real server and chain, with a cheap deterministic agent.

The caller's lines are tones (WAV files the scenario names); the agent's STT "hears" scripted
words, its LLM is the real service on the fake OpenAI server (same reply every time) and its
TTS speaks tones. One call passes some checks and fails others, with the evidence.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from voiceagent.eval.cli import run_eval_command
from voiceagent.eval.records import CallRecords
from voiceagent.eval.runner import CallerVoice, EvalRunner, EvalTarget
from voiceagent.eval.scenario import load_scenarios
from voiceagent.server.in_process import serve_in_process

from .eval_fakes import CheapAgent, FakeOpenAIServer, FakeReply, cheap_settings, tone_wav

GREETING = "Hi, this is Bright Smile Dental."
REPLY = ["Sure,", " we", " close", " at", " 3", " pm", " on", " Fridays."]
SCENARIO = """
[[call]]
name = "fridays-then-tuesday"
greeting = { contains = ["Bright Smile"], interrupted = false }

[[call.line]]
say = "What time do you close on Fridays?"
audio = "fridays.wav"
pause_after_s = 0.4
expect = { contains = ["3 pm"], within_ms = 4000, max_wer = 0.0 }

[[call.line]]
say = "Can I book a cleaning next Tuesday?"
audio = "tuesday.wav"
pause_after_s = 0.4
expect = { contains = ["Tuesday"], max_wer = 0.1 }
"""
# What the agent's STT hears: line 1 right, line 2 with one word wrong (1 error in 7 words).
HEARD = ["What time do you close on Fridays?", "Can I book a clinic next Tuesday?"]


def scenario_file(folder: Path) -> Path:
    tone_wav(folder / "fridays.wav", 0.6)
    tone_wav(folder / "tuesday.wav", 0.6, hz=350.0)
    path = folder / "calls.toml"
    path.write_text(SCENARIO)
    return path


async def test_a_call_passes_and_fails_its_checks_with_evidence(tmp_path):
    scenarios = load_scenarios([scenario_file(tmp_path)])
    async with FakeOpenAIServer(FakeReply(tokens=REPLY)) as llm:
        settings = cheap_settings(llm.base_url, GREETING)
        async with serve_in_process(settings, CheapAgent(HEARD)) as url:
            target = EvalTarget(url, CallRecords(settings.storage))
            runner = EvalRunner(
                target, CallerVoice(settings.local), tail_s=0.5, max_wait_reply_s=5.0
            )
            report = await runner.run(scenarios)

    (result,) = report.results
    checks = {(c.where, c.check): c for c in result.checks}
    print({k: (c.passed, c.evidence) for k, c in checks.items()})
    assert checks[("greeting", "contains 'Bright Smile'")].passed is True
    assert checks[("greeting", "not interrupted")].passed is True
    assert checks[("line 1", "contains '3 pm'")].passed is True
    assert checks[("line 1", "contains '3 pm'")].evidence == (
        "heard 'Sure, we close at 3 pm on Fridays.'"
    )
    latency = checks[("line 1", "within 4000 ms")]
    assert latency.passed is True and latency.evidence.startswith("first agent audio ")
    assert checks[("line 1", "understood with WER ≤ 0.00")].passed is True
    # The failing checks: the reply is not about Tuesday; the STT misheard one word.
    wrong_topic = checks[("line 2", "contains 'Tuesday'")]
    assert wrong_topic.passed is False
    assert wrong_topic.evidence == "heard 'Sure, we close at 3 pm on Fridays.'"
    misheard = checks[("line 2", "understood with WER ≤ 0.10")]
    assert misheard.passed is False
    assert misheard.evidence == (
        "WER 0.14: said 'Can I book a cleaning next Tuesday?', "
        "committed 'Can I book a clinic next Tuesday?'"
    )
    assert report.passed is False and result.failed == 2
    figures = report.to_dict()["overall"]
    assert figures["latency_ms"]["count"] == 2
    assert figures["stt_wer"] == {"rate": 1 / 14, "edits": 1, "reference_words": 14}
    assert len(llm.requests) >= 2  # the real LLM service asked once per caller turn


async def test_the_cli_against_a_running_server_judges_what_the_caller_observed(tmp_path, capsys):
    path = scenario_file(tmp_path)
    out = tmp_path / "report.json"
    async with FakeOpenAIServer(FakeReply(tokens=REPLY)) as llm:
        settings = cheap_settings(llm.base_url, GREETING)
        settings.storage.dir = tmp_path / "server-calls"  # not where the eval looks
        async with serve_in_process(settings, CheapAgent(HEARD)) as url:
            args = argparse.Namespace(
                files=[str(path)], url=url, out=str(out), scenario=[], max_wait=5.0, tail=0.5
            )
            code = await run_eval_command(args)

    printed = capsys.readouterr().out
    # Remote: the words are not observable, so only latency and clears are judged (and pass).
    assert code == 0, printed
    data = json.loads(out.read_text())
    assert data["passed"] is True and data["target"] == url
    overall = data["overall"]
    assert (overall["passed"], overall["failed"], overall["not_evaluated"]) == (2, 0, 5)
    assert overall["stt_wer"] is None and overall["latency_ms"]["count"] == 2
    assert "not evaluated: the server reports no transcript" in printed
    assert "RESULT: PASS" in printed


async def test_the_cli_refuses_a_bad_scenario_file_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[call]]\nname = 'x'\n[[call.line]]\nsay = 'hi'\nexpect = { within_ms = 0 }\n")
    args = argparse.Namespace(
        files=[str(bad)], url=None, out=None, scenario=[], max_wait=5.0, tail=0.5
    )
    assert await run_eval_command(args) == 2
    err = capsys.readouterr().err
    assert "bad.toml: call 'x': line 1: expect.within_ms: expected a number > 0, got int 0" in err


async def test_the_cli_names_the_known_calls_for_an_unknown_scenario(tmp_path, capsys):
    path = scenario_file(tmp_path)
    args = argparse.Namespace(
        files=[str(path)], url=None, out=None, scenario=["nope"], max_wait=5.0, tail=0.5
    )
    assert await run_eval_command(args) == 2
    assert (
        "--scenario 'nope': no such call (calls: fridays-then-tuesday)" in capsys.readouterr().err
    )


def test_the_in_process_server_does_not_refuse_its_one_caller_for_the_harness_own_lag():
    """Its event loop is the harness's too: the loop-lag limit is lifted unless configured."""
    from voiceagent.eval.runner import IN_PROCESS_MAX_LOOP_LAG_MS, one_caller_admission
    from voiceagent.settings import Settings

    lifted = one_caller_admission(Settings(server={"host": "127.0.0.1"}))
    assert lifted.server.max_loop_lag_ms == IN_PROCESS_MAX_LOOP_LAG_MS
    assert lifted.server.max_calls == Settings().server.max_calls
    chosen = Settings(server={"host": "127.0.0.1", "max_loop_lag_ms": 400})
    assert one_caller_admission(chosen).server.max_loop_lag_ms == 400
