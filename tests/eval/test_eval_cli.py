"""``voiceagent eval`` from the command line: any bot in process (``--bot module:factory``),
content judged from the server's record, the HTML report opened in Chromium, a baseline run
compared, and a remote server's words judged when its call store is readable here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

import tests.eval.cheap_bot as cheap_bot  # the module --bot names, not a second copy
from tests.web.softphone_browser import chromium, require_chromium
from voiceagent.cli import main
from voiceagent.eval.bots import load_bot
from voiceagent.eval.cli import run_eval_command
from voiceagent.server.in_process import serve_in_process

from .eval_fakes import CheapAgent, FakeOpenAIServer, FakeReply, cheap_settings, tone_wav

pytestmark = pytest.mark.slow

GREETING = "Hi, this is Bright Smile Dental."
REPLY = ["Sure,", " we", " close", " at", " 3", " pm", " on", " Fridays,", " and", " are"]
REPLY += [" open", " the", " whole", " week", " too."]
SCENARIOS = """
[[call]]
name = "fridays"
category = "questions"
greeting = { contains = ["Bright Smile"] }

[[call.line]]
say = "What time do you close on Fridays?"
audio = "fridays.wav"
pause_after_s = 0.4
expect = { contains = ["3 pm"], within_ms = 4000, max_wer = 0.0 }

[[call]]
name = "cut-in"
category = "interrupters"

[[call.line]]
say = "What time do you close on Fridays?"
audio = "fridays.wav"
pause_after_s = 0.4

[[call.line]]
say = "What time do you close on Fridays?"
audio = "fridays.wav"
barge_in_after_s = 0.3
pause_after_s = 0.4
expect = { contains = ["Tuesday"] }
"""


def scenario_file(folder: Path) -> Path:
    tone_wav(folder / "fridays.wav", 0.6)
    path = folder / "calls.toml"
    path.write_text(SCENARIOS)
    return path


def args(**values: Any) -> argparse.Namespace:
    defaults = dict(
        files=[],
        url=None,
        out=None,
        scenario=[],
        max_wait=5.0,
        tail=0.5,
        bot=None,
        html=None,
        html_audio="auto",
        baseline=None,
        condition=[],
        category=[],
        auth_token=None,
    )
    return argparse.Namespace(**{**defaults, **values})


@pytest.fixture
def cheap_env(monkeypatch: pytest.MonkeyPatch):
    """The in-process server's settings come from the environment: the fake LLM, no fallback."""

    def use(llm_url: str) -> None:
        for key, value in {
            "VOICEAGENT_LLM": "openai",
            "VOICEAGENT_CLOUD__OPENAI_BASE_URL": llm_url,
            "VOICEAGENT_CLOUD__OPENAI_API_KEY": "test",
            "VOICEAGENT_CLOUD__OPENAI_MODEL": "fake",
            "VOICEAGENT_FALLBACK__LLM": "",
            "VOICEAGENT_AGENT__GREETING": GREETING,
            "CHEAP_BOT_HEARD": "What time do you close on Fridays?",
        }.items():
            monkeypatch.setenv(key, value)

    return use


async def test_any_bot_is_evaluated_in_process_with_its_words_judged_and_drawn(
    tmp_path: Path, cheap_env, capsys
):
    path = scenario_file(tmp_path)
    report, html = tmp_path / "run.json", tmp_path / "run.html"
    cheap_bot.STARTED.clear()
    async with FakeOpenAIServer(FakeReply(tokens=REPLY)) as llm:
        cheap_env(llm.base_url)
        code = await run_eval_command(
            args(
                files=[str(path)],
                bot="tests.eval.cheap_bot:make_bot",
                out=str(report),
                html=str(html),
            )
        )
    printed = capsys.readouterr().out
    assert code == 1, printed  # the barge-in's reply is not about Tuesday
    assert cheap_bot.STARTED == ["start", "stop"]
    data = json.loads(report.read_text())
    fridays, cut_in = data["scenarios"]
    checks = {c["check"]: c for c in fridays["checks"]}
    assert checks["contains '3 pm'"]["passed"] is True  # the agent's words, from the record
    assert checks["understood with WER ≤ 0.00"]["passed"] is True
    assert data["bot"] == "tests.eval.cheap_bot:make_bot"
    # the failed check names its call and the call's compact timeline follows
    sid = cut_in["call"]["call_sid"]
    assert "FAIL  line 2   contains 'Tuesday'" in printed and f"[{sid}]" in printed
    assert f"timeline of {sid} (stream clock):" in printed
    assert "BARGE-IN" in printed and "clear sent" in printed
    assert "latency by stage: commit wait" in printed
    assert "missed barge-ins 0/1 (0.0 %)" in printed
    # the timeline of each call is in the JSON, with the caller's side and the split latency
    kinds = {e["kind"] for e in cut_in["timeline"]["events"]}
    assert {"caller_line", "caller_heard", "caller", "agent", "decision", "clear"} <= kinds
    (latency, *_) = fridays["timeline"]["latencies"]
    assert latency["end_of_speech_by"] == "caller"
    assert latency["stages_ms"]["network"] is not None
    # and the record now holds the caller's side too: calls show opens it
    assert main(["calls", "show", sid]) == 0
    assert "caller  says 'What time do you close on Fridays?'" in capsys.readouterr().out

    # a second run compared with the first: the same checks, nothing new
    again = tmp_path / "again.json"
    async with FakeOpenAIServer(FakeReply(tokens=REPLY)) as llm:
        cheap_env(llm.base_url)
        await run_eval_command(
            args(
                files=[str(path)],
                bot="tests.eval.cheap_bot:make_bot",
                out=str(again),
                baseline=str(report),
                scenario=["fridays"],
            )
        )
    printed = capsys.readouterr().out
    assert "compared with the baseline:" in printed
    assert "checks: 0 now pass, 0 now fail (0 new, 1 gone)" in printed

    # the report opened in a headless browser (last: it skips without Chromium)
    require_chromium()
    async with chromium(tmp_path) as page:
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        await page.goto(html.as_uri())
        found = await page.evaluate(
            """() => ({
                plots: document.querySelectorAll('figure svg').length,
                timelines: document.querySelectorAll('figure.timeline svg').length,
                audio: document.querySelectorAll('audio').length,
                failed: document.querySelectorAll('details.call[open]').length,
                text: document.body.innerText,
            })"""
        )
        durations = await page.evaluate(
            """async () => Promise.all([...document.querySelectorAll('audio')].map(a =>
                new Promise(done => { a.onloadedmetadata = () => done(a.duration);
                                      a.onerror = () => done(-1); a.load(); })))"""
        )
    assert found["timelines"] == 2 and found["plots"] >= 5  # histogram, stages, rates + calls
    assert found["audio"] == 2 and all(d > 1.0 for d in durations), durations
    assert found["failed"] == 1
    assert "latency by stage" in found["text"] and "false barge-ins" in found["text"]
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


async def test_a_remote_servers_words_are_judged_from_its_call_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    """The server runs elsewhere (here: its own settings) but records where this eval reads."""
    path = scenario_file(tmp_path)
    async with FakeOpenAIServer(FakeReply(tokens=REPLY)) as llm:
        settings = cheap_settings(llm.base_url, GREETING)
        monkeypatch.setenv("VOICEAGENT_STORAGE__DIR", str(settings.storage.dir))
        heard = ["What time do you close on Fridays?"] * 10
        async with serve_in_process(settings, CheapAgent(heard)) as url:
            code = await run_eval_command(args(files=[str(path)], url=url, scenario=["fridays"]))
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "PASS  line 1   contains '3 pm'" in printed and "not evaluated" not in printed


async def test_a_bot_name_that_resolves_to_nothing_is_a_clear_error(tmp_path: Path, capsys):
    bot = load_bot("tests/eval/cheap_bot.py:make_bot", cheap_settings("http://x", GREETING))
    assert type(bot).__name__ == "CheapBot"  # a file path names a bot as well as a module
    path = scenario_file(tmp_path)
    for spec, why in (
        ("nowhere.module:bot", "cannot import nowhere.module"),
        ("tests/eval/cheap_bot.py:missing", "has no 'missing'"),
        ("tests/eval/cheap_bot.py:STARTED", "expected a bot factory f(settings)"),
        ("just-a-name", "expected module:name or path/file.py:name"),
    ):
        assert await run_eval_command(args(files=[str(path)], bot=spec)) == 2
        assert why in capsys.readouterr().err


async def test_a_wrong_condition_or_category_is_refused_before_any_call(tmp_path: Path, capsys):
    path = scenario_file(tmp_path)
    assert await run_eval_command(args(files=[str(path)], condition=["traffic"])) == 2
    assert "--condition 'traffic': unknown condition 'traffic'" in capsys.readouterr().err
    assert await run_eval_command(args(files=[str(path)], category=["billing"])) == 2
    err = capsys.readouterr().err
    assert "--category 'billing': no call has it (categories: interrupters, questions)" in err
