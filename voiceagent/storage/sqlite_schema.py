"""The SQLite call store's schema, its migrations, and opening a database safely.

A new database gets the version-1 schema, then every migration up to :data:`SCHEMA_VERSION`
(``PRAGMA user_version``), all under the write lock: the dialer and the server may open a new
database at the same moment, and only one of them creates it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SCHEMA_VERSION = 2
_WAL_ATTEMPTS = 100

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

_MIGRATIONS = {
    # 2: which way the call went, Twilio's status and the timeline of its progress, answering
    # machine verdicts; end reasons in the vocabulary of voiceagent.telephony.EndReason.
    2: """
ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound';
ALTER TABLE calls ADD COLUMN twilio_status TEXT;
ALTER TABLE calls ADD COLUMN answered_by TEXT;
ALTER TABLE calls ADD COLUMN answered_at REAL;
UPDATE calls SET answered_at = started_at WHERE stream_sid != '';
UPDATE calls SET end_reason = CASE end_reason
    WHEN 'stop' THEN 'caller_hung_up'
    WHEN 'ended' THEN 'agent_hung_up'
    WHEN 'server_shutdown' THEN 'server_shutdown'
    ELSE 'error' END
WHERE end_reason IS NOT NULL;
CREATE TABLE IF NOT EXISTS call_status (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    at REAL NOT NULL,
    source TEXT NOT NULL,
    sequence INTEGER,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS call_status_by_call ON call_status (call_id, at);
CREATE INDEX IF NOT EXISTS calls_by_end_reason ON calls (end_reason);
CREATE INDEX IF NOT EXISTS calls_by_twilio_status ON calls (twilio_status);
""",
}


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch a new database to WAL (once per file; it sticks).

    SQLite answers a mode switch with "database is locked" at once, without waiting, while
    another connection holds the file: two processes creating the database together.
    """
    for attempt in range(_WAL_ATTEMPTS):
        try:
            if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.05)


def _version(db: sqlite3.Connection, path: Path) -> int:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"{path} has schema version {version}; this voiceagent knows "
            f"{SCHEMA_VERSION} (upgrade voiceagent)"
        )
    return version


def _upgrade(db: sqlite3.Connection, path: Path) -> None:
    """Create the schema or migrate it, statement by statement, in the caller's transaction."""
    version = _version(db, path)  # again, now that no other process can change it
    scripts = [_SCHEMA] if version == 0 else []
    scripts += [_MIGRATIONS[v] for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1)]
    for script in scripts:
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def prepare(db: sqlite3.Connection, path: Path) -> None:
    """Set up a fresh connection: WAL, durability, foreign keys, the current schema.

    Raises:
        sqlite3.DatabaseError: the database is newer than this voiceagent, or not ours.
    """
    _use_wal(db)
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    if _version(db, path) != SCHEMA_VERSION:
        db.execute("BEGIN IMMEDIATE")  # another process may be creating it too
        try:
            _upgrade(db, path)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
