"""Every way a call can end is in its record, and ``voiceagent calls --ended-by`` finds it.

How each end is recorded from a real call is tested end to end in ``test_outbound_calls`` (and
the transfer tests); here: one stored call per reason, each found by its filter alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.telephony.issue_end_reasons import ISSUE_END_REASONS
from voiceagent.cli import main
from voiceagent.settings import StorageSettings
from voiceagent.storage import CallEnd, CallInfo, open_store
from voiceagent.storage.store import CallStatusUpdate
from voiceagent.telephony import EndReason
from voiceagent.telephony.end_reason import END_REASONS

T0 = 1_780_000_000.0
NEVER_STREAMED = {"no_answer": "no-answer", "busy": "busy", "failed": "failed"}
NEVER_STREAMED["canceled"] = "canceled"


def sid_of(reason: str) -> str:
    return "CA" + f"{END_REASONS.index(reason):032x}"


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    """A store with one outbound call per end reason."""
    storage = StorageSettings(dir=tmp_path / "calls")
    store = open_store(storage)
    for n, reason in enumerate(END_REASONS):
        sid, at = sid_of(reason), T0 + 10 * n
        placed = CallStatusUpdate(
            sid, "initiated", at, direction="outbound-api", from_number="+15550100100"
        )
        store.record_status(placed)
        if reason in NEVER_STREAMED:
            status = NEVER_STREAMED[reason]
            store.record_status(CallStatusUpdate(sid, status, at + 5, end_reason=reason))
            continue
        info = CallInfo(
            call_sid=sid,
            stream_sid=f"MZ{n}",
            started_at=at + 1,
            direction="outbound-api",
            parameters={"Direction": "outbound-api"},
        )
        call_id = store.start_call(info)
        store.end_call(call_id, CallEnd(at + 6, reason))
        store.record_status(CallStatusUpdate(sid, "completed", at + 7, data={"duration_s": 5}))
    store.close()
    return storage.dir


def test_the_issue_lists_every_end_reason_the_records_use():
    assert set(END_REASONS) == {r.value for r in EndReason} == ISSUE_END_REASONS


@pytest.mark.parametrize("reason", END_REASONS)
def test_each_end_reason_is_recorded_and_filtered_alone(stored: Path, reason: str, capsys):
    assert main(["calls", "--dir", str(stored), "--ended-by", reason]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert [row.split()[1] for row in rows] == [sid_of(reason)]
    assert rows[0].split()[-1] == reason
    assert main(["calls", "--dir", str(stored), "show", sid_of(reason)]) == 0
    assert f"ended by {reason}" in capsys.readouterr().out


def test_an_unknown_end_reason_is_refused_by_the_filter(stored: Path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["calls", "--dir", str(stored), "--ended-by", "hung_up"])
    assert exited.value.code == 2
    assert "invalid choice: 'hung_up'" in capsys.readouterr().err
