"""What a call store keeps, and the small interface every store implements.

A store holds one row per call (who, when, which way, how it ended and Twilio's status, where
its audio is, summary counters), the call's events in order (the caller's committed
utterances, the agent's turns — what the caller heard, the full text, whether it was cut —,
per-turn metrics and tool calls) and its status timeline (Twilio's progress callbacks, the
REST answer that placed it, answering machine verdicts).

An outbound call's row exists before its media stream: the dialer and the status callbacks
create it by call sid (:meth:`CallStore.record_status`); the stream attaches to it.

Store methods block (disk or network I/O): the server calls them only from its storage
thread (:class:`~voiceagent.storage.archive.CallArchive`), the CLI directly.
SQLite (:class:`~voiceagent.storage.sqlite.SQLiteCallStore`) is the default; PostgreSQL
(:class:`~voiceagent.storage.postgres.PostgresCallStore`, ``storage.url``) serves several
servers at once; both share their queries (:mod:`voiceagent.storage.sql_store`) and schema
(:mod:`voiceagent.storage.migrations`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


class StoreError(Exception):
    """The store cannot be opened or used (unreachable server, a schema from the future...)."""


EventKind = Literal[
    # the transcript
    "caller",
    "revision",
    "agent",
    "metrics",
    "tool",
    "provider",
    # the timeline, as the server saw it (voiceagent.timeline)
    "speech_start",
    "speech_end",
    "sound",
    "partial",
    "final",
    "speculate",
    "speculation_cancel",
    "llm_request",
    "llm_first_token",
    "chunk",
    "tts_audio",
    "agent_audio",
    "decision",
    "pause",
    "resume",
    "clear",
    "pause_clear",
    "mark_sent",
    "mark_echo",
    "dtmf",
    "error",
    "stream",
    # the caller's side, added by the eval (the caller emulator's view)
    "caller_line",
    "caller_heard",
    "caller_clear",
]
TIMELINE_KINDS: frozenset[str] = frozenset(EventKind.__args__)  # type: ignore[attr-defined]
"""Every event kind a store may hold."""


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
    direction: str = "inbound"
    """``inbound``, or ``outbound-api`` for a call the agent placed."""


@dataclass(frozen=True)
class CallStatusUpdate:
    """One step of a call's progress, for its status timeline.

    ``source``: ``rest`` (the answer that placed the call), ``status_callback`` (Twilio's
    progress events: ``status`` is its ``CallStatus``), ``amd`` (Twilio's answering machine
    result: ``status`` is its ``AnsweredBy``) or ``agent`` (the agent's own verdict, same
    words). ``end_reason`` ends a call that never had a media stream (busy, no answer, …).
    """

    call_sid: str
    status: str
    at: float
    """Unix time of the event."""
    source: str = "status_callback"
    sequence: int | None = None
    direction: str = ""
    from_number: str = ""
    to_number: str = ""
    account_sid: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    end_reason: str | None = None


@dataclass(frozen=True)
class StatusEntry:
    """One entry of a call's status timeline (see :class:`CallStatusUpdate`)."""

    status: str
    at: float
    source: str
    sequence: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallEvent:
    """One entry of a call's transcript or timeline.

    ``caller``: a committed utterance (``text``; ``data``: commit reason, speculative hit).
    ``agent``: one agent turn (``text`` heard, ``full_text`` meant, ``interrupted``; ``data``:
    ``started_s`` when it became audible, ``unheard_text``, ``in_context``). ``metrics``: the
    turn-taking figures of caller turn ``turn_id`` (``data``). ``tool``: a tool call (``text``
    the function name; ``data``: call id, arguments, result). ``provider``: a stage's provider
    failed (``text`` the stage; ``data``: ``failed``, ``serving`` (empty: none left),
    ``reason``, the error). ``clear``: a barge-in dropped the agent's unplayed audio.
    ``pause_clear``: a soft clear stopped the agent at the caller's first sound; ``data``:
    ``held_s``, the unplayed audio held to be sent again if the agent goes on. The other kinds
    are the call's timeline (what each means: :mod:`voiceagent.timeline.model`).
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
    direction: str = "inbound"
    twilio_status: str | None = None
    """Twilio's latest ``CallStatus`` (from the status callbacks), if it sent any."""
    answered_by: str | None = None
    """``human``, ``machine_start``, ``machine_end_beep``, … when machines were checked for."""
    answered_at: float | None = None
    """Unix time the media stream started (None: it never did)."""

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (None while the call is live or if it never ended)."""
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True)
class CallDetail:
    """A stored call, its events in order and its status timeline."""

    call: CallSummary
    events: list[CallEvent]
    timeline: list[StatusEntry] = field(default_factory=list)


class CallStore(Protocol):
    """Where calls are kept. Every method blocks; call it from one thread at a time."""

    def start_call(self, info: CallInfo) -> int:
        """A media stream started: attach it to the call's row, or insert one; returns its id.

        An outbound call's row exists already (created by its progress, streamless).
        """

    def record_status(self, update: CallStatusUpdate) -> int:
        """Add a step to the call's timeline (creating its row if needed); returns its id.

        Twilio's status only moves forward (a late ``ringing`` does not undo ``in-progress``);
        a repeated status callback (same sequence number) is kept once.
        """

    def add_event(self, call_id: int, event: CallEvent) -> None:
        """Append one event to the call (and bump its summary counters)."""

    def add_events(self, call_id: int, events: Sequence[CallEvent]) -> None:
        """Append events to the call in order (and bump its counters), in one transaction."""

    def end_call(self, call_id: int, end: CallEnd) -> None:
        """Complete the call's row."""

    def recent_calls(
        self, limit: int = 20, *, status: str | None = None, ended_by: str | None = None
    ) -> list[CallSummary]:
        """The latest calls, newest first.

        Only those with Twilio's ``status`` and the end reason ``ended_by``, when given.
        """

    def find_call(self, call_sid: str) -> CallDetail | None:
        """The latest call with this sid (or the call with this numeric id), with its events."""

    def close(self) -> None:
        """Release the connection."""
