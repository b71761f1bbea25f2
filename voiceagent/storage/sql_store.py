"""The call store's queries, shared by both databases (SQLite and PostgreSQL).

A backend gives a DB-API connection, its placeholder style and how JSON and booleans are
stored; the queries are written once here, with ``?`` placeholders. Every write is one short
transaction, so a committed event survives a crash of the server that wrote it, and two
servers writing one database at once interleave whole events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from voiceagent.storage.store import CallDetail, CallEnd, CallEvent, CallInfo, CallSummary

COUNTERS = {"caller": "caller_turns", "agent": "agent_turns", "tool": "tool_calls"}
SUMMARY_COLUMNS = (
    "id, call_sid, stream_sid, from_number, to_number, started_at, ended_at, end_reason, "
    "audio_path, audio_seconds, caller_turns, agent_turns, interrupted_turns, tool_calls, "
    "write_errors"
)


def to_json(value: Any) -> str:
    """JSON text of an event's or call's data (anything unknown as its ``str``)."""
    return json.dumps(value, default=str, ensure_ascii=False)


class SQLCallStore:
    """A :class:`~voiceagent.storage.store.CallStore` over one DB-API connection.

    Subclasses set ``_db`` (a connection in autocommit mode) and may override
    :meth:`_sql` (placeholder style), :meth:`_json` (how data is bound) and :meth:`_data`
    (how it is read back).
    """

    _db: Any

    # -- backend hooks --------------------------------------------------------------------

    def _sql(self, query: str) -> str:
        """``query`` in the driver's placeholder style (``?`` by default)."""
        return query

    def _json(self, value: Any) -> Any:
        """A data dict as bound to a JSON column."""
        return to_json(value)

    def _data(self, stored: Any) -> dict[str, Any]:
        """A JSON column read back."""
        return json.loads(stored) if isinstance(stored, str) else dict(stored or {})

    def _interrupted(self, value: bool | None) -> Any:
        """A boolean as bound to the ``interrupted`` column."""
        return value

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN`` … ``COMMIT`` (``ROLLBACK`` on error)."""
        self._execute("BEGIN")
        try:
            yield
        except BaseException:
            self._execute("ROLLBACK")
            raise
        self._execute("COMMIT")

    def _execute(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        cursor = self._db.cursor()
        cursor.execute(self._sql(query), params)
        return cursor

    # -- writes ---------------------------------------------------------------------------

    def start_call(self, info: CallInfo) -> int:
        """Insert a live call; returns its id."""
        row = self._execute(
            "INSERT INTO calls (call_sid, stream_sid, account_sid, from_number, to_number, "
            "parameters, started_at, audio_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                info.call_sid,
                info.stream_sid,
                info.account_sid,
                info.from_number,
                info.to_number,
                self._json(info.parameters),
                info.started_at,
                info.audio_path,
            ),
        ).fetchone()
        return int(row[0])

    def add_event(self, call_id: int, event: CallEvent) -> None:
        """Append one event and bump the call's counters, in one transaction."""
        interrupted = None if event.interrupted is None else bool(event.interrupted)
        with self._transaction():
            self._execute(
                "INSERT INTO events (call_id, kind, at_s, turn_id, text, full_text, "
                "interrupted, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    event.kind,
                    event.at_s,
                    event.turn_id,
                    event.text,
                    event.full_text,
                    self._interrupted(interrupted),
                    self._json(event.data),
                ),
            )
            counter = COUNTERS.get(event.kind)
            if counter is not None:
                extra = ", interrupted_turns = interrupted_turns + 1" if interrupted else ""
                self._execute(
                    f"UPDATE calls SET {counter} = {counter} + 1{extra} WHERE id = ?", (call_id,)
                )

    def end_call(self, call_id: int, end: CallEnd) -> None:
        """Complete the call's row."""
        self._execute(
            "UPDATE calls SET ended_at = ?, end_reason = ?, audio_seconds = ?, "
            "write_errors = ? WHERE id = ?",
            (end.ended_at, end.reason, end.audio_seconds, end.write_errors, call_id),
        )

    # -- reads ----------------------------------------------------------------------------

    def recent_calls(self, limit: int = 20) -> list[CallSummary]:
        """The latest calls, newest first."""
        rows = self._execute(
            f"SELECT {SUMMARY_COLUMNS} FROM calls ORDER BY started_at DESC, id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [CallSummary(*row) for row in rows]

    def find_call(self, call_sid: str) -> CallDetail | None:
        """The latest call with this sid (or numeric id), with its events in order."""
        row = self._execute(
            f"SELECT {SUMMARY_COLUMNS} FROM calls WHERE call_sid = ? "
            "ORDER BY started_at DESC, id DESC LIMIT 1",
            (call_sid,),
        ).fetchone()
        if row is None and call_sid.isdigit() and int(call_sid) < 2**63:
            row = self._execute(
                f"SELECT {SUMMARY_COLUMNS} FROM calls WHERE id = ?", (int(call_sid),)
            ).fetchone()
        if row is None:
            return None
        call = CallSummary(*row)
        rows = self._execute(
            "SELECT kind, at_s, turn_id, text, full_text, interrupted, data FROM events "
            "WHERE call_id = ? ORDER BY id",
            (call.id,),
        ).fetchall()
        events = [
            CallEvent(
                kind=kind,
                at_s=at_s,
                turn_id=turn_id,
                text=text,
                full_text=full_text,
                interrupted=None if interrupted is None else bool(interrupted),
                data=self._data(data),
            )
            for kind, at_s, turn_id, text, full_text, interrupted, data in rows
        ]
        return CallDetail(call=call, events=events)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
