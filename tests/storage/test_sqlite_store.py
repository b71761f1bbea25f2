"""What only the SQLite store does (the rest: test_call_store.py, on both backends)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.storage.calls import a_call
from voiceagent.settings import Settings
from voiceagent.storage import CallEvent
from voiceagent.storage.sqlite import DB_NAME, SQLiteCallStore


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


def test_the_storage_folder_defaults_to_xdg_data_home_and_is_overridable(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings.from_env({}).storage.dir == tmp_path / "xdg" / "voiceagent"
    settings = Settings.from_env(
        {"VOICEAGENT_STORAGE__DIR": str(tmp_path / "calls"), "VOICEAGENT_STORAGE__ENABLED": "0"}
    )
    assert settings.storage.dir == tmp_path / "calls" and not settings.storage.enabled
