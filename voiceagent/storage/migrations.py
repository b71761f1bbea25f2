"""The call store's schema, as numbered migrations for both backends.

A store applies the migrations its database lacks when it opens it, in order, each in the
same transaction as the record of its version, under a lock, so several servers (or workers)
starting at once against one database migrate it once. SQLite keeps the version in
``PRAGMA user_version``; PostgreSQL in the ``voiceagent_schema`` table. A database newer than
this voiceagent is refused.

To change the schema, append a :class:`Migration` with the next version and the statements
for each backend (e.g. ``ALTER TABLE calls ADD COLUMN status TEXT``); never edit a released
one.
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceagent.storage.store import StoreError


@dataclass(frozen=True)
class Migration:
    """One schema step: its version, what it does, and its statements per backend."""

    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


_COUNTERS = (
    "caller_turns INTEGER NOT NULL DEFAULT 0",
    "agent_turns INTEGER NOT NULL DEFAULT 0",
    "interrupted_turns INTEGER NOT NULL DEFAULT 0",
    "tool_calls INTEGER NOT NULL DEFAULT 0",
    "write_errors INTEGER NOT NULL DEFAULT 0",
)

_END_REASONS = (
    "UPDATE calls SET end_reason = CASE end_reason "
    "WHEN 'stop' THEN 'caller_hung_up' WHEN 'ended' THEN 'agent_hung_up' "
    "WHEN 'server_shutdown' THEN 'server_shutdown' ELSE 'error' END "
    "WHERE end_reason IS NOT NULL"
)
_STATUS_COLUMNS = (
    "ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound'",
    "ALTER TABLE calls ADD COLUMN twilio_status TEXT",
    "ALTER TABLE calls ADD COLUMN answered_by TEXT",
)
_STATUS_INDEXES = (
    "CREATE INDEX call_status_by_call ON call_status (call_id, at)",
    "CREATE INDEX calls_by_end_reason ON calls (end_reason)",
    "CREATE INDEX calls_by_twilio_status ON calls (twilio_status)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "calls and their events",
        sqlite=(
            "CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, call_sid TEXT NOT NULL, "
            "stream_sid TEXT NOT NULL, account_sid TEXT NOT NULL DEFAULT '', "
            "from_number TEXT NOT NULL DEFAULT '', to_number TEXT NOT NULL DEFAULT '', "
            "parameters TEXT NOT NULL DEFAULT '{}', started_at REAL NOT NULL, ended_at REAL, "
            "end_reason TEXT, audio_path TEXT, audio_seconds REAL, " + ", ".join(_COUNTERS) + ")",
            "CREATE INDEX IF NOT EXISTS calls_by_sid ON calls (call_sid)",
            "CREATE INDEX IF NOT EXISTS calls_by_start ON calls (started_at)",
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, "
            "call_id INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE, "
            "kind TEXT NOT NULL, at_s REAL NOT NULL, turn_id INTEGER, "
            "text TEXT NOT NULL DEFAULT '', full_text TEXT, interrupted INTEGER, "
            "data TEXT NOT NULL DEFAULT '{}')",
            "CREATE INDEX IF NOT EXISTS events_by_call ON events (call_id, id)",
        ),
        postgres=(
            "CREATE TABLE calls (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "call_sid TEXT NOT NULL, stream_sid TEXT NOT NULL, "
            "account_sid TEXT NOT NULL DEFAULT '', from_number TEXT NOT NULL DEFAULT '', "
            "to_number TEXT NOT NULL DEFAULT '', parameters JSONB NOT NULL DEFAULT '{}', "
            "started_at DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION, end_reason TEXT, "
            "audio_path TEXT, audio_seconds DOUBLE PRECISION, " + ", ".join(_COUNTERS) + ")",
            "CREATE INDEX calls_by_sid ON calls (call_sid)",
            "CREATE INDEX calls_by_start ON calls (started_at)",
            "CREATE TABLE events (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "call_id BIGINT NOT NULL REFERENCES calls (id) ON DELETE CASCADE, "
            "kind TEXT NOT NULL, at_s DOUBLE PRECISION NOT NULL, turn_id INTEGER, "
            "text TEXT NOT NULL DEFAULT '', full_text TEXT, interrupted BOOLEAN, "
            "data JSONB NOT NULL DEFAULT '{}')",
            "CREATE INDEX events_by_call ON events (call_id, id)",
        ),
    ),
    # Which way the call went, Twilio's status and the timeline of its progress, answering
    # machine verdicts; end reasons in the vocabulary of voiceagent.telephony.EndReason.
    Migration(
        2,
        "call direction, Twilio status, status timeline, end reasons",
        sqlite=(
            *_STATUS_COLUMNS,
            "ALTER TABLE calls ADD COLUMN answered_at REAL",
            "UPDATE calls SET answered_at = started_at WHERE stream_sid != ''",
            _END_REASONS,
            "CREATE TABLE call_status (id INTEGER PRIMARY KEY, "
            "call_id INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE, "
            "status TEXT NOT NULL, at REAL NOT NULL, source TEXT NOT NULL, sequence INTEGER, "
            "data TEXT NOT NULL DEFAULT '{}')",
            *_STATUS_INDEXES,
        ),
        postgres=(
            *_STATUS_COLUMNS,
            "ALTER TABLE calls ADD COLUMN answered_at DOUBLE PRECISION",
            "UPDATE calls SET answered_at = started_at WHERE stream_sid != ''",
            _END_REASONS,
            "CREATE TABLE call_status (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "call_id BIGINT NOT NULL REFERENCES calls (id) ON DELETE CASCADE, "
            "status TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, source TEXT NOT NULL, "
            "sequence INTEGER, data JSONB NOT NULL DEFAULT '{}')",
            *_STATUS_INDEXES,
        ),
    ),
)

LATEST = MIGRATIONS[-1].version


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer voiceagent."""


def pending(current: int, where: str) -> tuple[Migration, ...]:
    """The migrations a database at version ``current`` lacks, in order.

    Raises:
        SchemaTooNewError: ``current`` is beyond :data:`LATEST`.
    """
    if current > LATEST:
        raise SchemaTooNewError(
            f"{where} has schema version {current}; this voiceagent knows {LATEST} "
            "(upgrade voiceagent)"
        )
    return tuple(m for m in MIGRATIONS if m.version > current)
