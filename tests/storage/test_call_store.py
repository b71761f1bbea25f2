"""The call store, the same on SQLite and on PostgreSQL: a call and its transcript survive a
round trip and a reopen, servers writing one database at once lose nothing, and the schema is
migrated once, whoever opens the database first."""

from __future__ import annotations

import threading

import pytest

from tests.storage.calls import T0, a_call
from voiceagent.settings import StorageSettings
from voiceagent.storage import CallEnd, CallEvent, open_store
from voiceagent.storage.migrations import LATEST, SchemaTooNewError


def test_a_call_and_its_transcript_round_trip(storage: StorageSettings) -> None:
    store = open_store(storage)
    call_id = a_call(store)
    events = [
        CallEvent("agent", 2.1, turn_id=1, text="Hello.", full_text="Hello.", interrupted=False),
        CallEvent("caller", 4.0, turn_id=1, text="Can I book?", data={"reason": "stable"}),
        CallEvent("metrics", 5.5, turn_id=1, data={"wait_s": 0.3, "regret": False}),
        CallEvent(
            "agent",
            6.0,
            turn_id=2,
            text="Sure, we",
            full_text="Sure, we have two openings.",
            interrupted=True,
            data={"started_s": 5.0, "unheard_text": "have two openings."},
        ),
        CallEvent("tool", 6.5, text="book", data={"stage": "call", "arguments": {"day": "tue"}}),
        CallEvent("provider", 7.0, text="tts", data={"failed": "a", "serving": "b", "reason": "é"}),
    ]
    for event in events:
        store.add_event(call_id, event)
    live = store.recent_calls()[0]
    assert live.ended_at is None and live.duration_s is None
    store.end_call(call_id, CallEnd(T0 + 42.5, "stop", audio_seconds=42.5, write_errors=0))
    store.close()

    reopened = open_store(storage, create=False)
    detail = reopened.find_call("CA01")
    assert detail is not None
    assert detail.events == events
    call = detail.call
    assert (call.call_sid, call.stream_sid, call.from_number, call.to_number) == (
        "CA01",
        "MZ01",
        "+15550100",
        "+15550199",
    )
    assert (call.end_reason, call.duration_s, call.audio_path) == ("stop", 42.5, "/calls/a.wav")
    assert (call.caller_turns, call.agent_turns, call.interrupted_turns, call.tool_calls) == (
        1,
        2,
        1,
        1,
    )
    assert reopened.find_call(str(call.id)) == detail  # by numeric id too
    assert reopened.find_call("CA99") is None
    assert reopened.find_call("99999999999999999999") is None
    reopened.close()


def test_recent_calls_are_newest_first_and_a_repeated_sid_finds_the_latest(storage) -> None:
    store = open_store(storage)
    a_call(store, "CA01", T0)
    a_call(store, "CA02", T0 + 60)
    latest = a_call(store, "CA01", T0 + 120)
    assert [c.call_sid for c in store.recent_calls()] == ["CA01", "CA02", "CA01"]
    assert [c.call_sid for c in store.recent_calls(limit=1)] == ["CA01"]
    detail = store.find_call("CA01")
    assert detail is not None and detail.call.id == latest
    store.close()


def test_a_reader_sees_what_a_writer_commits(storage: StorageSettings) -> None:
    writer = open_store(storage)
    call_id = a_call(writer)
    reader = open_store(storage, create=False)
    writer.add_event(call_id, CallEvent("caller", 1.0, turn_id=1, text="hi"))
    detail = reader.find_call("CA01")
    assert detail is not None and [e.text for e in detail.events] == ["hi"]
    reader.close()
    writer.close()


def test_two_servers_writing_one_database_at_once_lose_nothing(storage) -> None:
    """Two stores (two servers' storage threads) each record 20 calls of 10 events at once."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def server(name: str) -> None:
        try:
            store = open_store(storage)  # both open (and migrate) at the same moment
            barrier.wait(timeout=30)
            for n in range(20):
                call_id = a_call(store, f"CA{name}{n:02d}", T0 + n)
                for turn in range(10):
                    store.add_event(call_id, CallEvent("caller", turn, turn_id=turn, text="x"))
                store.end_call(call_id, CallEnd(T0 + n + 30, "stop"))
            store.close()
        except BaseException as e:  # reported below
            errors.append(e)

    servers = [threading.Thread(target=server, args=(n,), daemon=True) for n in ("A", "B")]
    for thread in servers:
        thread.start()
    for thread in servers:
        thread.join(60)
    assert errors == []
    store = open_store(storage, create=False)
    calls = store.recent_calls(limit=100)
    assert len(calls) == 40 and {c.caller_turns for c in calls} == {10}
    assert all(c.end_reason == "stop" for c in calls)
    detail = store.find_call("CAB07")
    assert detail is not None and [e.turn_id for e in detail.events] == list(range(10))
    store.close()


def test_nothing_stored_yet_is_not_created_for_reading(storage: StorageSettings) -> None:
    with pytest.raises(FileNotFoundError):
        open_store(storage, create=False)


def test_a_database_from_a_newer_voiceagent_is_refused(storage: StorageSettings) -> None:
    open_store(storage).close()
    _set_version(storage, LATEST + 1)
    with pytest.raises(SchemaTooNewError, match=f"schema version {LATEST + 1}"):
        open_store(storage)
    with pytest.raises(SchemaTooNewError, match="upgrade voiceagent"):
        open_store(storage, create=False)


def _set_version(storage: StorageSettings, version: int) -> None:
    if storage.url:
        import psycopg

        with psycopg.connect(storage.url, autocommit=True) as db:
            db.execute(
                "INSERT INTO voiceagent_schema (version, name) VALUES (%s, 'future')", (version,)
            )
    else:
        import sqlite3

        from voiceagent.storage.sqlite import DB_NAME

        sqlite3.connect(storage.dir / DB_NAME).execute(f"PRAGMA user_version={version}")


def test_a_new_migration_is_applied_once_to_an_existing_database(storage, monkeypatch) -> None:
    """How a later change (e.g. a call status column) reaches databases already in use."""
    from voiceagent.storage import migrations

    store = open_store(storage)
    a_call(store, "CA01")
    store.close()
    status = migrations.Migration(
        LATEST + 1,
        "call status",
        sqlite=("ALTER TABLE calls ADD COLUMN status TEXT NOT NULL DEFAULT 'unknown'",),
        postgres=("ALTER TABLE calls ADD COLUMN status TEXT NOT NULL DEFAULT 'unknown'",),
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, status))
    monkeypatch.setattr(migrations, "LATEST", status.version)
    opened = []

    def server_starts() -> None:
        store = open_store(storage)
        opened.append(store.find_call("CA01") is not None)
        store.close()

    threads = [threading.Thread(target=server_starts, daemon=True) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert opened == [True, True]  # both servers started; the column was added once
    store = open_store(storage)
    row = store._execute("SELECT status FROM calls WHERE call_sid = ?", ("CA01",)).fetchone()
    assert row[0] == "unknown"
    store.close()


def test_the_calls_command_reads_either_backend(storage, capsys) -> None:
    from voiceagent.cli import main

    store = open_store(storage)
    a_call(store, "CA5e1f")
    store.close()
    where = ["--url", storage.url] if storage.url else ["--dir", str(storage.dir)]
    assert main(["calls", *where]) == 0
    assert "CA5e1f" in capsys.readouterr().out
    assert main(["calls", *where, "show", "CA5e1f"]) == 0
    assert "from +15550100 to +15550199" in capsys.readouterr().out


def test_a_postgres_connection_lost_between_writes_costs_only_that_write(postgres_url) -> None:
    import psycopg

    from voiceagent.storage.postgres import PostgresCallStore

    store = PostgresCallStore(postgres_url)
    call_id = a_call(store)
    pid = store._db.info.backend_pid
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        store.add_event(call_id, CallEvent("caller", 1.0, turn_id=1, text="lost"))
    store.add_event(call_id, CallEvent("caller", 2.0, turn_id=2, text="kept"))  # reconnected
    detail = store.find_call("CA01")
    assert detail is not None and [e.text for e in detail.events] == ["kept"]
    store.close()


def test_an_unreachable_postgres_is_a_clear_error(capsys) -> None:
    import socket

    from voiceagent.cli import main
    from voiceagent.storage import StoreError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://voiceagent:secret@127.0.0.1:{port}/calls"
    with pytest.raises(StoreError, match=r"cannot connect to postgresql://voiceagent:\*\*\*@"):
        open_store(StorageSettings(url=url))
    assert main(["calls", "--url", url]) == 2
    err = capsys.readouterr().err
    assert "cannot read the calls" in err and "secret" not in err
