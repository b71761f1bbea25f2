"""The default call store: one SQLite database (stdlib ``sqlite3``, WAL journal).

WAL lets ``voiceagent calls`` read while the server writes, and ``voiceagent dial`` record the
call it placed. Each write is its own short transaction (``synchronous=NORMAL``: a committed
event survives a process crash); writes that read first take the write lock up front
(``BEGIN IMMEDIATE``), so two processes never create the same call twice. A store object
owns one connection and must stay on the thread that created it. Older databases are
migrated in place when opened (``PRAGMA user_version``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from voiceagent.storage.sqlite_schema import SCHEMA_VERSION, prepare  # noqa: F401 (re-exported)
from voiceagent.storage.store import (
    CallDetail,
    CallEnd,
    CallEvent,
    CallInfo,
    CallStatusUpdate,
    CallSummary,
    StatusEntry,
)

DB_NAME = "calls.db"

_STATUS_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3}
"""Twilio's statuses in the order a call goes through them; every other (final) one is last."""

_LIFE_ORDER = (
    "CASE status WHEN 'queued' THEN 0 WHEN 'initiated' THEN 1 WHEN 'ringing' THEN 2 "
    "WHEN 'in-progress' THEN 3 ELSE 4 END"
)
"""Twilio stamps whole seconds: steps of one second are shown in the order a call lives them."""

_COUNTERS = {"caller": "caller_turns", "agent": "agent_turns", "tool": "tool_calls"}
_SUMMARY_COLUMNS = (
    "id, call_sid, stream_sid, from_number, to_number, started_at, ended_at, end_reason, "
    "audio_path, audio_seconds, caller_turns, agent_turns, interrupted_turns, tool_calls, "
    "write_errors, direction, twilio_status, answered_by, answered_at"
)


def _rank(status: str | None) -> int:
    """Where ``status`` comes in a call's life (final statuses last; none first)."""
    return -1 if not status else _STATUS_RANK.get(status, len(_STATUS_RANK))


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
            prepare(self._db, path)
        except BaseException:
            self._db.close()
            raise

    # -- writes ---------------------------------------------------------------------------

    def start_call(self, info: CallInfo) -> int:
        """Attach the stream to the call's streamless row (an outbound call), else insert one."""
        with self._transaction(immediate=True):
            row = self._db.execute(
                "SELECT id FROM calls WHERE call_sid = ? AND stream_sid = '' "
                "ORDER BY id DESC LIMIT 1",
                (info.call_sid,),
            ).fetchone()
            if row is not None:
                self._db.execute(
                    "UPDATE calls SET stream_sid = ?, account_sid = ?, parameters = ?, "
                    "audio_path = ?, answered_at = ?, direction = ?, "
                    "from_number = CASE WHEN from_number = '' THEN ? ELSE from_number END, "
                    "to_number = CASE WHEN to_number = '' THEN ? ELSE to_number END "
                    "WHERE id = ?",
                    (
                        info.stream_sid,
                        info.account_sid,
                        _json(info.parameters),
                        info.audio_path,
                        info.started_at,
                        info.direction,
                        info.from_number,
                        info.to_number,
                        row[0],
                    ),
                )
                return int(row[0])
            cursor = self._db.execute(
                "INSERT INTO calls (call_sid, stream_sid, account_sid, from_number, to_number, "
                "parameters, started_at, audio_path, answered_at, direction) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.call_sid,
                    info.stream_sid,
                    info.account_sid,
                    info.from_number,
                    info.to_number,
                    _json(info.parameters),
                    info.started_at,
                    info.audio_path,
                    info.started_at,
                    info.direction,
                ),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def record_status(self, update: CallStatusUpdate) -> int:
        """Add a step to the call's timeline, creating the call's row if needed."""
        with self._transaction(immediate=True):
            row = self._db.execute(
                "SELECT id, stream_sid, twilio_status FROM calls WHERE call_sid = ? "
                "ORDER BY id DESC LIMIT 1",
                (update.call_sid,),
            ).fetchone()
            if row is None:
                cursor = self._db.execute(
                    "INSERT INTO calls (call_sid, stream_sid, account_sid, from_number, "
                    "to_number, started_at, direction) VALUES (?, '', ?, ?, ?, ?, ?)",
                    (
                        update.call_sid,
                        update.account_sid,
                        update.from_number,
                        update.to_number,
                        update.at,
                        update.direction or "inbound",
                    ),
                )
                assert cursor.lastrowid is not None
                call_id, stream_sid, current = cursor.lastrowid, "", None
            else:
                call_id, stream_sid, current = int(row[0]), row[1], row[2]
                self._fill_in(call_id, update)
            if (
                update.sequence is not None
                and self._db.execute(
                    "SELECT 1 FROM call_status WHERE call_id = ? AND source = ? AND sequence = ?",
                    (call_id, update.source, update.sequence),
                ).fetchone()
            ):
                return call_id  # Twilio retried a callback it had already delivered
            self._db.execute(
                "INSERT INTO call_status (call_id, status, at, source, sequence, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    update.status,
                    update.at,
                    update.source,
                    update.sequence,
                    _json(update.data),
                ),
            )
            if update.source in ("amd", "agent"):
                self._db.execute(
                    "UPDATE calls SET answered_by = ? WHERE id = ?", (update.status, call_id)
                )
            else:
                if _rank(update.status) >= _rank(current):
                    self._db.execute(
                        "UPDATE calls SET twilio_status = ? WHERE id = ?", (update.status, call_id)
                    )
                self._db.execute(  # the call began at its earliest progress
                    "UPDATE calls SET started_at = ? WHERE id = ? AND started_at > ?",
                    (update.at, call_id, update.at),
                )
            if update.end_reason is not None and not stream_sid:
                self._db.execute(
                    "UPDATE calls SET end_reason = ?, ended_at = ? "
                    "WHERE id = ? AND end_reason IS NULL",
                    (update.end_reason, update.at, call_id),
                )
            return call_id

    def _fill_in(self, call_id: int, update: CallStatusUpdate) -> None:
        """Facts the row does not have yet (an earlier step did not carry them)."""
        self._db.execute(
            "UPDATE calls SET "
            "from_number = CASE WHEN from_number = '' THEN ? ELSE from_number END, "
            "to_number = CASE WHEN to_number = '' THEN ? ELSE to_number END, "
            "account_sid = CASE WHEN account_sid = '' THEN ? ELSE account_sid END, "
            "direction = CASE WHEN ? != '' THEN ? ELSE direction END "
            "WHERE id = ?",
            (
                update.from_number,
                update.to_number,
                update.account_sid,
                update.direction,
                update.direction,
                call_id,
            ),
        )

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

    def recent_calls(
        self, limit: int = 20, *, status: str | None = None, ended_by: str | None = None
    ) -> list[CallSummary]:
        """The latest calls, newest first (only Twilio ``status`` / end reason ``ended_by``)."""
        where, args = [], []
        if status is not None:
            where.append("twilio_status = ?")
            args.append(status)
        if ended_by is not None:
            where.append("end_reason = ?")
            args.append(ended_by)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._db.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM calls {clause}"
            "ORDER BY started_at DESC, id DESC LIMIT ?",
            (*args, limit),
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
        timeline = [
            StatusEntry(status, at, source, sequence, json.loads(data))
            for status, at, source, sequence, data in self._db.execute(
                "SELECT status, at, source, sequence, data FROM call_status WHERE call_id = ? "
                f"ORDER BY at, {_LIFE_ORDER}, id",
                (call.id,),
            )
        ]
        return CallDetail(call=call, events=events, timeline=timeline)

    def close(self) -> None:
        """Close the connection (WAL is checkpointed by SQLite)."""
        self._db.close()

    def _transaction(self, *, immediate: bool = False) -> _Transaction:
        return _Transaction(self._db, immediate=immediate)


class _Transaction:
    """``BEGIN`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection.

    ``immediate``: take the write lock at once (a read-then-write that must not interleave
    with another process's).
    """

    def __init__(self, db: sqlite3.Connection, *, immediate: bool = False) -> None:
        self._db = db
        self._begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    def __enter__(self) -> None:
        self._db.execute(self._begin)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
