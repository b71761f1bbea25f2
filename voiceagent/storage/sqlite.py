"""The default call store: one SQLite database (stdlib ``sqlite3``, WAL journal).

WAL lets ``voiceagent calls`` read while the server writes. Each write is its own short
transaction (``synchronous=NORMAL``: a committed event survives a process crash). A store
object owns one connection and must stay on the thread that created it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from voiceagent.storage.store import CallDetail, CallEnd, CallEvent, CallInfo, CallSummary

DB_NAME = "calls.db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    call_sid TEXT NOT NULL,
    stream_sid TEXT NOT NULL,
    account_sid TEXT NOT NULL DEFAULT '',
    from_number TEXT NOT NULL DEFAULT '',
    to_number TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL DEFAULT '{}',
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT,
    audio_path TEXT,
    audio_seconds REAL,
    caller_turns INTEGER NOT NULL DEFAULT 0,
    agent_turns INTEGER NOT NULL DEFAULT 0,
    interrupted_turns INTEGER NOT NULL DEFAULT 0,
    tool_calls INTEGER NOT NULL DEFAULT 0,
    write_errors INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS calls_by_sid ON calls (call_sid);
CREATE INDEX IF NOT EXISTS calls_by_start ON calls (started_at);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    at_s REAL NOT NULL,
    turn_id INTEGER,
    text TEXT NOT NULL DEFAULT '',
    full_text TEXT,
    interrupted INTEGER,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_by_call ON events (call_id, id);
"""

_COUNTERS = {"caller": "caller_turns", "agent": "agent_turns", "tool": "tool_calls"}
_SUMMARY_COLUMNS = (
    "id, call_sid, stream_sid, from_number, to_number, started_at, ended_at, end_reason, "
    "audio_path, audio_seconds, caller_turns, agent_turns, interrupted_turns, tool_calls, "
    "write_errors"
)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


class SQLiteCallStore:
    """A :class:`~voiceagent.storage.store.CallStore` in ``<folder>/calls.db``."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open (and by default create) the database.

        Args:
            path: The database file (its folder is created when ``create``).
            create: Whether a missing database may be created (False: read an existing one).

        Raises:
            FileNotFoundError: ``create`` is False and there is no database at ``path``.
            sqlite3.Error / OSError: the database cannot be opened or is not ours.
        """
        self.path = path
        if not create and not path.exists():
            raise FileNotFoundError(f"no call database at {path}")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"{path} has schema version {version}; this voiceagent knows "
                    f"{SCHEMA_VERSION} (upgrade voiceagent)"
                )
            if version < SCHEMA_VERSION:
                self._db.executescript(_SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")
        except BaseException:
            self._db.close()
            raise

    # -- writes ---------------------------------------------------------------------------

    def start_call(self, info: CallInfo) -> int:
        """Insert a live call; returns its id."""
        cursor = self._db.execute(
            "INSERT INTO calls (call_sid, stream_sid, account_sid, from_number, to_number, "
            "parameters, started_at, audio_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                info.call_sid,
                info.stream_sid,
                info.account_sid,
                info.from_number,
                info.to_number,
                _json(info.parameters),
                info.started_at,
                info.audio_path,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def add_event(self, call_id: int, event: CallEvent) -> None:
        """Append one event and bump the call's counters, in one transaction."""
        interrupted = None if event.interrupted is None else int(event.interrupted)
        with self._transaction():
            self._db.execute(
                "INSERT INTO events (call_id, kind, at_s, turn_id, text, full_text, "
                "interrupted, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    event.kind,
                    event.at_s,
                    event.turn_id,
                    event.text,
                    event.full_text,
                    interrupted,
                    _json(event.data),
                ),
            )
            counter = _COUNTERS.get(event.kind)
            if counter is not None:
                extra = ", interrupted_turns = interrupted_turns + 1" if interrupted else ""
                self._db.execute(
                    f"UPDATE calls SET {counter} = {counter} + 1{extra} WHERE id = ?", (call_id,)
                )

    def end_call(self, call_id: int, end: CallEnd) -> None:
        """Complete the call's row."""
        self._db.execute(
            "UPDATE calls SET ended_at = ?, end_reason = ?, audio_seconds = ?, "
            "write_errors = ? WHERE id = ?",
            (end.ended_at, end.reason, end.audio_seconds, end.write_errors, call_id),
        )

    # -- reads ----------------------------------------------------------------------------

    def recent_calls(self, limit: int = 20) -> list[CallSummary]:
        """The latest calls, newest first."""
        rows = self._db.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM calls ORDER BY started_at DESC, id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [CallSummary(*row) for row in rows]

    def find_call(self, call_sid: str) -> CallDetail | None:
        """The latest call with this sid (or numeric id), with its events in order."""
        row = self._db.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM calls WHERE call_sid = ? "
            "ORDER BY started_at DESC, id DESC LIMIT 1",
            (call_sid,),
        ).fetchone()
        if row is None and call_sid.isdigit():
            row = self._db.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM calls WHERE id = ?", (int(call_sid),)
            ).fetchone()
        if row is None:
            return None
        call = CallSummary(*row)
        events = [
            CallEvent(
                kind=kind,
                at_s=at_s,
                turn_id=turn_id,
                text=text,
                full_text=full_text,
                interrupted=None if interrupted is None else bool(interrupted),
                data=json.loads(data),
            )
            for kind, at_s, turn_id, text, full_text, interrupted, data in self._db.execute(
                "SELECT kind, at_s, turn_id, text, full_text, interrupted, data FROM events "
                "WHERE call_id = ? ORDER BY id",
                (call.id,),
            )
        ]
        return CallDetail(call=call, events=events)

    def close(self) -> None:
        """Close the connection (WAL is checkpointed by SQLite)."""
        self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
