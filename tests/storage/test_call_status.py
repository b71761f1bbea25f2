"""A call's status timeline in the store: outbound calls before and after their stream.

The store tests run on SQLite and on PostgreSQL (the ``storage`` fixture); the migration of a
version-1 SQLite file and the race to create a new SQLite file are SQLite's own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from voiceagent.cli import main
from voiceagent.settings import StorageSettings
from voiceagent.storage import CallEnd, CallInfo, open_store
from voiceagent.storage.migrations import MIGRATIONS
from voiceagent.storage.sqlite import DB_NAME, SQLiteCallStore
from voiceagent.storage.store import CallStatusUpdate

T0 = 1_780_000_000.0
SID = "CA" + "d" * 32
US, THEM = "+15550100100", "+15550100199"


def progress(status: str, at: float, sequence: int | None, **extra) -> CallStatusUpdate:
    return CallStatusUpdate(
        call_sid=SID,
        status=status,
        at=at,
        sequence=sequence,
        direction="outbound-api",
        from_number=US,
        to_number=THEM,
        **extra,
    )


def test_an_outbound_call_is_one_row_from_dialing_to_hanging_up(storage: StorageSettings):
    store = open_store(storage)
    # Twilio's first callback can beat the dialer's own record of the REST answer.
    first = store.record_status(progress("initiated", T0 + 0.1, 0))
    assert store.record_status(progress("queued", T0, None, source="rest")) == first
    store.record_status(progress("ringing", T0 + 0.9, 1))
    store.record_status(progress("in-progress", T0 + 4.0, 2))
    store.record_status(progress("ringing", T0 + 0.9, 1))  # Twilio retried: kept once
    info = CallInfo(
        call_sid=SID,
        stream_sid="MZ1",
        started_at=T0 + 4.2,
        from_number=US,
        to_number=THEM,
        parameters={"Direction": "outbound-api"},
        direction="outbound-api",
    )
    assert store.start_call(info) == first  # the stream joins the dialed call's row
    store.record_status(
        CallStatusUpdate(SID, "machine_start", T0 + 7.0, source="agent", data={"evidence": "beep"})
    )
    store.end_call(first, CallEnd(T0 + 20.0, "voicemail"))
    store.record_status(
        progress("completed", T0 + 20.3, 3, data={"duration_s": 16}, end_reason="error")
    )
    detail = store.find_call(SID)
    assert detail is not None
    call = detail.call
    assert (call.direction, call.twilio_status, call.answered_by) == (
        "outbound-api",
        "completed",
        "machine_start",
    )
    assert (call.started_at, call.answered_at, call.stream_sid) == (T0, T0 + 4.2, "MZ1")
    # The agent's reason stands: a final status only ends calls that never streamed.
    assert (call.end_reason, call.ended_at) == ("voicemail", T0 + 20.0)
    assert [(e.status, e.source) for e in detail.timeline] == [
        ("queued", "rest"),
        ("initiated", "status_callback"),
        ("ringing", "status_callback"),
        ("in-progress", "status_callback"),
        ("machine_start", "agent"),
        ("completed", "status_callback"),
    ]
    assert detail.timeline[-1].data == {"duration_s": 16}
    assert len(store.recent_calls()) == 1
    store.close()


def test_a_call_that_never_streams_ends_with_its_final_status(storage: StorageSettings):
    store = open_store(storage)
    store.record_status(progress("ringing", T0, 1))
    store.record_status(progress("busy", T0 + 3.0, 2, end_reason="busy"))
    store.record_status(progress("initiated", T0 - 0.5, 0))  # late, out of order
    call = store.recent_calls()[0]
    assert (call.twilio_status, call.end_reason, call.ended_at) == ("busy", "busy", T0 + 3.0)
    assert call.stream_sid == "" and call.answered_at is None
    assert [e.status for e in store.find_call(SID).timeline] == ["initiated", "ringing", "busy"]
    store.close()


def test_two_processes_recording_the_same_new_call_make_one_row(storage: StorageSettings):
    dialer, server = open_store(storage), open_store(storage)
    dialer.record_status(progress("queued", T0, None, source="rest"))
    server.record_status(progress("initiated", T0 + 0.1, 0))
    assert len(server.recent_calls()) == len(dialer.recent_calls()) == 1
    dialer.close()
    server.close()


def test_calls_are_filtered_by_twilio_status_and_end_reason(storage: StorageSettings, capsys):
    store = open_store(storage)
    for n, (status, reason) in enumerate(
        [("busy", "busy"), ("no-answer", "no_answer"), ("completed", None)]
    ):
        update = progress(status, T0 + n, 2, end_reason=reason)
        store.record_status(CallStatusUpdate(**{**update.__dict__, "call_sid": f"CA{n:032d}"}))
    assert [c.twilio_status for c in store.recent_calls(status="busy")] == ["busy"]
    assert [c.end_reason for c in store.recent_calls(ended_by="no_answer")] == ["no_answer"]
    assert store.recent_calls(status="busy", ended_by="no_answer") == []
    store.close()

    where = ["--url", storage.url] if storage.url else ["--dir", str(storage.dir)]
    assert main(["calls", *where, "--ended-by", "busy"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert row.split()[1:3] == [f"CA{0:032d}", "out"]
    assert row.split()[-2:] == ["busy", "busy"]
    assert main(["calls", *where, "show", f"CA{1:032d}"]) == 0
    out = capsys.readouterr().out
    assert "(no media stream)" in out and "ended by no_answer" in out
    assert "Twilio status no-answer" in out
    assert "  status:" in out and "no-answer" in out.split("  status:")[1]


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path):
    path = tmp_path / DB_NAME
    old = sqlite3.connect(path)
    old.executescript(";\n".join(MIGRATIONS[0].sqlite) + ";\nPRAGMA user_version=1;")
    for sid, reason in (("CA1", "stop"), ("CA2", "socket_closed"), ("CA3", None)):
        old.execute(
            "INSERT INTO calls (call_sid, stream_sid, started_at, end_reason) VALUES (?, ?, ?, ?)",
            (sid, "MZ" + sid, T0, reason),
        )
    old.commit()
    old.close()

    store = SQLiteCallStore(path, create=False)
    calls = {c.call_sid: c for c in store.recent_calls()}
    assert {sid: c.end_reason for sid, c in calls.items()} == {
        "CA1": "caller_hung_up",
        "CA2": "error",
        "CA3": None,
    }
    assert all(c.direction == "inbound" and c.answered_at == T0 for c in calls.values())
    assert store.find_call("CA1").timeline == []
    store.close()
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == 2


def test_processes_opening_a_new_database_at_once_all_get_the_full_schema(tmp_path: Path):
    """The dialer and the server may create the database together: one of them does it."""
    import threading

    def open_it(path: Path, start: threading.Barrier, errors: list[BaseException]) -> None:
        start.wait()
        try:
            SQLiteCallStore(path).close()
        except BaseException as e:  # noqa: BLE001 (collected for the assertion)
            errors.append(e)

    for attempt in range(5):
        path = tmp_path / f"race-{attempt}" / DB_NAME
        path.parent.mkdir()
        start = threading.Barrier(6)
        errors: list[BaseException] = []
        threads = [threading.Thread(target=open_it, args=(path, start, errors)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
