"""A call's status timeline in the SQL store (both databases, see :mod:`sql_store`).

The timeline holds Twilio's progress callbacks, the REST answer that placed the call and
answering machine verdicts. An outbound call's row exists before its media stream: the dialer
and the status callbacks create it by call sid; the stream attaches to it
(``SQLCallStore.start_call``). Twilio's status only moves forward; a callback Twilio delivers
twice (same sequence number) is kept once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from voiceagent.storage.store import CallStatusUpdate, StatusEntry

STATUS_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3}
"""Twilio's statuses in the order a call goes through them; every other (final) one is last."""

LIFE_ORDER = (
    "CASE status WHEN 'queued' THEN 0 WHEN 'initiated' THEN 1 WHEN 'ringing' THEN 2 "
    "WHEN 'in-progress' THEN 3 ELSE 4 END"
)
"""Twilio stamps whole seconds: steps of one second are shown in the order a call lives them."""


def rank(status: str | None) -> int:
    """Where ``status`` comes in a call's life (final statuses last; none first)."""
    return -1 if not status else STATUS_RANK.get(status, len(STATUS_RANK))


class StatusTimeline(ABC):
    """The status half of :class:`~voiceagent.storage.sql_store.SQLCallStore`.

    The store provides the four hooks below (declared abstract here, defined there).
    """

    @abstractmethod
    def _execute(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        """Run ``query`` (``?`` placeholders) with ``params``; the cursor."""

    @abstractmethod
    def _json(self, value: Any) -> Any:
        """A data dict as bound to a JSON column."""

    @abstractmethod
    def _data(self, stored: Any) -> dict[str, Any]:
        """A JSON column read back."""

    @abstractmethod
    def _call_transaction(self, call_sid: str) -> Any:
        """A transaction no other writer of ``call_sid`` interleaves with."""

    def record_status(self, update: CallStatusUpdate) -> int:
        """Add a step to the call's timeline, creating the call's row if needed."""
        with self._call_transaction(update.call_sid):
            row = self._execute(
                "SELECT id, stream_sid, twilio_status FROM calls WHERE call_sid = ? "
                "ORDER BY id DESC LIMIT 1",
                (update.call_sid,),
            ).fetchone()
            if row is None:
                row_id = self._execute(
                    "INSERT INTO calls (call_sid, stream_sid, account_sid, from_number, "
                    "to_number, started_at, direction) VALUES (?, '', ?, ?, ?, ?, ?) RETURNING id",
                    (
                        update.call_sid,
                        update.account_sid,
                        update.from_number,
                        update.to_number,
                        update.at,
                        update.direction or "inbound",
                    ),
                ).fetchone()[0]
                call_id, stream_sid, current = int(row_id), "", None
            else:
                call_id, stream_sid, current = int(row[0]), row[1], row[2]
                self._fill_in(call_id, update)
            if (
                update.sequence is not None
                and self._execute(
                    "SELECT 1 FROM call_status WHERE call_id = ? AND source = ? AND sequence = ?",
                    (call_id, update.source, update.sequence),
                ).fetchone()
            ):
                return call_id  # Twilio retried a callback it had already delivered
            self._execute(
                "INSERT INTO call_status (call_id, status, at, source, sequence, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    update.status,
                    update.at,
                    update.source,
                    update.sequence,
                    self._json(update.data),
                ),
            )
            if update.source in ("amd", "agent"):
                self._execute(
                    "UPDATE calls SET answered_by = ? WHERE id = ?", (update.status, call_id)
                )
            else:
                if rank(update.status) >= rank(current):
                    self._execute(
                        "UPDATE calls SET twilio_status = ? WHERE id = ?", (update.status, call_id)
                    )
                self._execute(  # the call began at its earliest progress
                    "UPDATE calls SET started_at = ? WHERE id = ? AND started_at > ?",
                    (update.at, call_id, update.at),
                )
            if update.end_reason is not None and not stream_sid:
                self._execute(
                    "UPDATE calls SET end_reason = ?, ended_at = ? "
                    "WHERE id = ? AND end_reason IS NULL",
                    (update.end_reason, update.at, call_id),
                )
            return call_id

    def _fill_in(self, call_id: int, update: CallStatusUpdate) -> None:
        """Facts the row does not have yet (an earlier step did not carry them)."""
        self._execute(
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

    def _timeline(self, call_id: int) -> list[StatusEntry]:
        """The call's status timeline, in the order it lived it."""
        rows = self._execute(
            "SELECT status, at, source, sequence, data FROM call_status WHERE call_id = ? "
            f"ORDER BY at, {LIFE_ORDER}, id",
            (call_id,),
        ).fetchall()
        return [
            StatusEntry(status, at, source, sequence, self._data(data))
            for status, at, source, sequence, data in rows
        ]
