"""``voiceagent dial`` as a user runs it: the real ``serve``, ``dial`` and ``calls show`` commands
against the fake Twilio (``tests.telephony.dial_demo``, also runnable on its own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.telephony.dial_demo import OUTBOUND_GREETING, run_demo

pytestmark = pytest.mark.slow


async def test_voiceagent_dial_places_a_call_the_callee_answers_and_the_agent_speaks_first(
    tmp_path: Path,
):
    run = await run_demo(tmp_path, "person", say=lambda _text: None)
    assert run.dial_code == 0, run.dial_output
    assert run.dial_output.splitlines()[-1].startswith(f"call {run.sid}: completed after ")
    assert run.call.statuses() == ["initiated", "ringing", "in-progress", "completed"]
    report = run.call.report
    assert run.agent_first, (report.agent_utterances_s, report.turns) if report else None
    report = run.call.report
    assert report is not None and report.turns and report.turns[0].latency_ms is not None
    assert run.end_reason == "caller_hung_up"
    show = run.show_output
    assert f"call {run.sid}" in show and "ended by caller_hung_up" in show
    assert "answered by human" in show and OUTBOUND_GREETING in show
