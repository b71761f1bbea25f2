"""The call store's queries, shared by both databases (SQLite and PostgreSQL).

A backend gives a DB-API connection, its placeholder style and how JSON and booleans are
stored; the queries are written once here (and in :mod:`sql_status`), with ``?``
placeholders. Every write is one short transaction (a live call's events come in batches, one
per recording flush), so committed events survive a crash of the server that wrote them, and
two servers writing one database at once interleave whole batches. A write that reads first
(attaching a stream to a call placed by the dialer) holds a per-call lock
(:meth:`SQLCallStore._call_transaction`), so two processes never create the same call twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from voiceagent.storage.sql_status import StatusTimeline
from voiceagent.storage.store import CallDetail, CallEnd, CallEvent, CallInfo, CallSummary

COUNTERS = {"caller": "caller_turns", "agent": "agent_turns", "tool": "tool_calls"}
SUMMARY_COLUMNS = (
    "id, call_sid, stream_sid, from_number, to_number, started_at, ended_at, end_reason, "
    "audio_path, audio_seconds, caller_turns, agent_turns, interrupted_turns, tool_calls, "
    "write_errors, direction, twilio_status, answered_by, answered_at"
)


def to_json(value: Any) -> str:
    """JSON text of an event's or call's data (anything unknown as its ``str``)."""
    return json.dumps(value, default=str, ensure_ascii=False)


class SQLCallStore(StatusTimeline):
    """A :class:`~voiceagent.storage.store.CallStore` over one DB-API connection.

    Subclasses set ``_db`` (a connection in autocommit mode) and may override :meth:`_sql`
    (placeholder style), :meth:`_json` / :meth:`_data` (JSON columns), :meth:`_interrupted`
    (booleans) and :meth:`_call_transaction` (the per-call lock).
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
    def _transaction(self, begin: str = "BEGIN") -> Iterator[None]:
        """``begin`` … ``COMMIT`` (``ROLLBACK`` on error)."""
        self._execute(begin)
        try:
            yield
        except BaseException:
            self._execute("ROLLBACK")
            raise
        self._execute("COMMIT")

    def _call_transaction(self, call_sid: str) -> Any:
        """A transaction no other writer of ``call_sid`` interleaves with."""
        return self._transaction()

    def _execute(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        cursor = self._db.cursor()
        cursor.execute(self._sql(query), params)
        return cursor

    # -- writes ---------------------------------------------------------------------------

    def start_call(self, info: CallInfo) -> int:
        """Attach the stream to the call's streamless row (an outbound call), else insert one."""
        with self._call_transaction(info.call_sid):
            row = self._execute(
                "SELECT id FROM calls WHERE call_sid = ? AND stream_sid = '' "
                "ORDER BY id DESC LIMIT 1",
                (info.call_sid,),
            ).fetchone()
            if row is not None:
                self._execute(
                    "UPDATE calls SET stream_sid = ?, account_sid = ?, parameters = ?, "
                    "audio_path = ?, answered_at = ?, direction = ?, "
                    "from_number = CASE WHEN from_number = '' THEN ? ELSE from_number END, "
                    "to_number = CASE WHEN to_number = '' THEN ? ELSE to_number END "
                    "WHERE id = ?",
                    (
                        info.stream_sid,
                        info.account_sid,
                        self._json(info.parameters),
                        info.audio_path,
                        info.started_at,
                        info.direction,
                        info.from_number,
                        info.to_number,
                        row[0],
                    ),
                )
                return int(row[0])
            row = self._execute(
                "INSERT INTO calls (call_sid, stream_sid, account_sid, from_number, to_number, "
                "parameters, started_at, audio_path, answered_at, direction) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    info.call_sid,
                    info.stream_sid,
                    info.account_sid,
                    info.from_number,
                    info.to_number,
                    self._json(info.parameters),
                    info.started_at,
                    info.audio_path,
                    info.started_at,
                    info.direction,
                ),
            ).fetchone()
            return int(row[0])

    def add_event(self, call_id: int, event: CallEvent) -> None:
        """Append one event and bump the call's counters, in one transaction."""
        self.add_events(call_id, (event,))

    def add_events(self, call_id: int, events: Sequence[CallEvent]) -> None:
        """Append events in order and bump the call's counters, all in one transaction."""
        if not events:
            return
        counts: Counter[str] = Counter()
        rows = []
        for event in events:
            interrupted = None if event.interrupted is None else bool(event.interrupted)
            rows.append(
                (
                    call_id,
                    event.kind,
                    event.at_s,
                    event.turn_id,
                    event.text,
                    event.full_text,
                    self._interrupted(interrupted),
                    self._json(event.data),
                )
            )
            counter = COUNTERS.get(event.kind)
            if counter is not None:
                counts[counter] += 1
                if interrupted:
                    counts["interrupted_turns"] += 1
        with self._transaction():
            self._db.cursor().executemany(
                self._sql(
                    "INSERT INTO events (call_id, kind, at_s, turn_id, text, full_text, "
                    "interrupted, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                rows,
            )
            if counts:
                bumps = ", ".join(f"{column} = {column} + ?" for column in counts)
                self._execute(f"UPDATE calls SET {bumps} WHERE id = ?", (*counts.values(), call_id))

    def end_call(self, call_id: int, end: CallEnd) -> None:
        """Complete the call's row."""
        self._execute(
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
        rows = self._execute(
            f"SELECT {SUMMARY_COLUMNS} FROM calls {clause}"
            "ORDER BY started_at DESC, id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [CallSummary(*row) for row in rows]

    def find_call(self, call_sid: str) -> CallDetail | None:
        """The latest call with this sid (or numeric id), with its events and timeline."""
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
        return CallDetail(call=call, events=events, timeline=self._timeline(call.id))

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
