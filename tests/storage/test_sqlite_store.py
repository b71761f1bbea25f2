"""The SQLite call store: a call and its transcript survive a round trip and a reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from voiceagent.settings import Settings, StorageSettings
from voiceagent.storage import CallEnd, CallEvent, CallInfo, open_store
from voiceagent.storage.sqlite import DB_NAME, SQLiteCallStore

T0 = 1_780_000_000.0


def a_call(store: SQLiteCallStore, call_sid: str = "CA01", started_at: float = T0) -> int:
    info = CallInfo(
        call_sid=call_sid,
        stream_sid="MZ" + call_sid[2:],
        started_at=started_at,
        account_sid="AC01",
        from_number="+15550100",
        to_number="+15550199",
        parameters={"From": "+15550100", "To": "+15550199"},
        audio_path="/calls/a.wav",
    )
    return store.start_call(info)


def test_a_call_and_its_transcript_round_trip(tmp_path: Path) -> None:
    store = SQLiteCallStore(tmp_path / DB_NAME)
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
    ]
    for event in events:
        store.add_event(call_id, event)
    live = store.recent_calls()[0]
    assert live.ended_at is None and live.duration_s is None
    store.end_call(call_id, CallEnd(T0 + 42.5, "stop", audio_seconds=42.5, write_errors=0))
    store.close()

    reopened = SQLiteCallStore(tmp_path / DB_NAME, create=False)
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
    reopened.close()


def test_recent_calls_are_newest_first_and_a_repeated_sid_finds_the_latest(tmp_path: Path):
    store = SQLiteCallStore(tmp_path / DB_NAME)
    a_call(store, "CA01", T0)
    a_call(store, "CA02", T0 + 60)
    latest = a_call(store, "CA01", T0 + 120)
    assert [c.call_sid for c in store.recent_calls()] == ["CA01", "CA02", "CA01"]
    assert [c.call_sid for c in store.recent_calls(limit=1)] == ["CA01"]
    detail = store.find_call("CA01")
    assert detail is not None and detail.call.id == latest
    store.close()


def test_the_database_uses_wal_so_the_cli_reads_while_the_server_writes(tmp_path: Path):
    writer = SQLiteCallStore(tmp_path / DB_NAME)
    call_id = a_call(writer)
    reader = SQLiteCallStore(tmp_path / DB_NAME, create=False)
    writer.add_event(call_id, CallEvent("caller", 1.0, turn_id=1, text="hi"))
    detail = reader.find_call("CA01")
    assert detail is not None and [e.text for e in detail.events] == ["hi"]
    mode = sqlite3.connect(tmp_path / DB_NAME).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    reader.close()
    writer.close()


def test_a_missing_database_is_not_created_for_reading(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no call database"):
        open_store(StorageSettings(dir=tmp_path / "nothing"), create=False)
    assert not (tmp_path / "nothing").exists()


def test_a_database_from_a_newer_voiceagent_is_refused(tmp_path: Path):
    path = tmp_path / DB_NAME
    sqlite3.connect(path).execute("PRAGMA user_version=99")
    with pytest.raises(sqlite3.DatabaseError, match="schema version 99"):
        SQLiteCallStore(path)


def test_the_storage_folder_defaults_to_xdg_data_home_and_is_overridable(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings.from_env({}).storage.dir == tmp_path / "xdg" / "voiceagent"
    settings = Settings.from_env(
        {"VOICEAGENT_STORAGE__DIR": str(tmp_path / "calls"), "VOICEAGENT_STORAGE__ENABLED": "0"}
    )
    assert settings.storage.dir == tmp_path / "calls" and not settings.storage.enabled
