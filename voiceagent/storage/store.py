"""What a call store keeps, and the small interface every store implements.

A store holds one row per call (who, when, how it ended, where its audio is, summary counters)
and the call's events in order: the caller's committed utterances, the agent's turns (what
the caller heard, the full text, whether it was cut), per-turn metrics and tool calls.

Store methods block (disk or network I/O): the server calls them only from its storage
thread (:class:`~voiceagent.storage.archive.CallArchive`), the CLI directly.
SQLite (:class:`~voiceagent.storage.sqlite.SQLiteCallStore`) is the default; PostgreSQL
(:class:`~voiceagent.storage.postgres.PostgresCallStore`, ``storage.url``) serves several
servers at once; both share their queries (:mod:`voiceagent.storage.sql_store`) and schema
(:mod:`voiceagent.storage.migrations`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


class StoreError(Exception):
    """The store cannot be opened or used (unreachable server, a schema from the future...)."""


EventKind = Literal["caller", "revision", "agent", "metrics", "tool", "provider"]


@dataclass(frozen=True)
class CallInfo:
    """A call as Twilio's ``start`` message described it."""

    call_sid: str
    stream_sid: str
    started_at: float
    """Unix time (seconds)."""
    account_sid: str = ""
    from_number: str = ""
    to_number: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    audio_path: str | None = None


@dataclass(frozen=True)
class CallEvent:
    """One entry of a call's transcript.

    ``caller``: a committed utterance (``text``; ``data``: commit reason, speculative hit).
    ``agent``: one agent turn (``text`` heard, ``full_text`` meant, ``interrupted``; ``data``:
    ``started_s`` when it became audible, ``unheard_text``). ``metrics``: the turn-taking
    figures of caller turn ``turn_id`` (``data``). ``tool``: a tool call (``text`` the
    function name; ``data``: call id, arguments, result). ``provider``: a stage's provider
    failed (``text`` the stage; ``data``: ``failed``, ``serving`` (empty: none left),
    ``reason``, the error).
    """

    kind: EventKind
    at_s: float
    """Seconds since the call started."""
    turn_id: int | None = None
    text: str = ""
    full_text: str | None = None
    interrupted: bool | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallEnd:
    """How a call ended."""

    ended_at: float
    """Unix time (seconds)."""
    reason: str
    audio_seconds: float | None = None
    write_errors: int = 0


@dataclass(frozen=True)
class CallSummary:
    """One stored call with its counters."""

    id: int
    call_sid: str
    stream_sid: str
    from_number: str
    to_number: str
    started_at: float
    ended_at: float | None
    end_reason: str | None
    audio_path: str | None
    audio_seconds: float | None
    caller_turns: int
    agent_turns: int
    interrupted_turns: int
    tool_calls: int
    write_errors: int

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (None while the call is live or if it never ended)."""
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True)
class CallDetail:
    """A stored call and its events in order."""

    call: CallSummary
    events: list[CallEvent]


class CallStore(Protocol):
    """Where calls are kept. Every method blocks; call it from one thread at a time."""

    def start_call(self, info: CallInfo) -> int:
        """Insert a live call; returns its id."""

    def add_event(self, call_id: int, event: CallEvent) -> None:
        """Append one event to the call (and bump its summary counters)."""

    def end_call(self, call_id: int, end: CallEnd) -> None:
        """Complete the call's row."""

    def recent_calls(self, limit: int = 20) -> list[CallSummary]:
        """The latest calls, newest first."""

    def find_call(self, call_sid: str) -> CallDetail | None:
        """The latest call with this sid (or the call with this numeric id), with its events."""

    def close(self) -> None:
        """Release the connection."""
