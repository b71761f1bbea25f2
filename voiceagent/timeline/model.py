"""One call's timeline: every event of the call on the caller's stream clock.

The server records the call as :class:`~voiceagent.storage.store.CallEvent` objects on its
own call clock (seconds since the call's ``start`` reached the pipeline). A ``stream`` event
tells where the stream's t = 0 lies on that clock (the transport's estimate from the media
timestamps), so :class:`CallTimeline` puts every event on the *stream clock*: the clock of the
caller (Twilio, or the caller emulator), on which what the caller said and heard is timed too.

Event kinds, as the server records them (``voiceagent.timeline.observer`` and the recorder):

- the caller: ``sound`` (the line turned loud or quiet, ``data.sounding``), ``speech_start`` /
  ``speech_end`` (the VAD; back-dated to when the voice began/ended), ``partial`` / ``final``
  (the STT's words), ``dtmf`` (``text`` the digit), ``caller`` (a committed turn: ``text``,
  ``data.reason``), ``revision`` (later, fuller words of that turn), ``metrics`` (its
  turn-taking figures);
- the reply: ``speculate`` (the LLM started early on ``text``), ``speculation_cancel``,
  ``llm_request`` (a reply started), ``llm_first_token``, ``chunk`` (a speakable chunk sent to
  the TTS: ``text``), ``tts_audio`` (the TTS's first audio of an utterance), ``agent_audio``
  (the first 20 ms of agent turn ``turn_id`` sent to the carrier; ``data.play_at_s`` when it
  plays), ``agent`` (the turn finished playing or was cut: ``text`` heard, ``full_text``,
  ``interrupted``, ``data.started_s``), ``tool`` (a tool call and its result);
- turn-taking: ``decision`` (``data.kind``: ``barge_in``, ``cancel_reply``, ``reply``,
  ``say``; ``data.reason``), ``pause`` / ``resume`` (agent audio held for a caller sound),
  ``clear`` (the carrier was told to drop unplayed audio: a barge-in), ``pause_clear`` (a soft
  clear at the caller's first sound, ``data.held_s`` held to go on), ``mark_sent`` / ``mark_echo``;
- the stack: ``provider`` (a provider failed: ``text`` the stage; ``data.failed``, ``serving``,
  ``reason``; recorded by the recorder),
  ``error`` (``text``);
- the caller's own view, added by ``voiceagent eval`` from the caller emulator:
  ``caller_line`` (a line spoken: ``text``, ``data.end_s``, ``data.index``), ``caller_heard``
  (agent audio reaching the caller's ear: ``data.end_s``), ``caller_clear`` (the ``clear`` as
  the caller's line received it: ``data.discarded_s``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from voiceagent.storage.store import CallDetail, CallEvent

TIME_KEYS = ("started_s", "play_at_s", "end_s")
"""``data`` fields that are times on the call clock (moved with ``at_s``); others are durations."""
CALLER_SIDE = frozenset({"caller_line", "caller_heard", "caller_clear"})
"""Kinds only the caller's side (the eval) records."""


def shift(event: CallEvent, by_s: float) -> CallEvent:
    """``event`` with its times (``at_s`` and the ``TIME_KEYS`` of its data) moved by ``by_s``."""
    data = dict(event.data)
    for key in TIME_KEYS:
        value = data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            data[key] = value + by_s
    return dataclasses.replace(event, at_s=event.at_s + by_s, data=data)


def event_dict(event: CallEvent) -> dict[str, Any]:
    """An event as JSON-ready data (empty fields left out)."""
    out: dict[str, Any] = {"kind": event.kind, "at_s": round(event.at_s, 4)}
    if event.turn_id is not None:
        out["turn_id"] = event.turn_id
    if event.text:
        out["text"] = event.text
    if event.full_text is not None:
        out["full_text"] = event.full_text
    if event.interrupted is not None:
        out["interrupted"] = event.interrupted
    if event.data:
        out["data"] = event.data
    return out


def event_from_dict(raw: dict[str, Any]) -> CallEvent:
    """The inverse of :func:`event_dict`."""
    return CallEvent(
        kind=raw["kind"],
        at_s=float(raw["at_s"]),
        turn_id=raw.get("turn_id"),
        text=raw.get("text", ""),
        full_text=raw.get("full_text"),
        interrupted=raw.get("interrupted"),
        data=dict(raw.get("data") or {}),
    )


@dataclass(frozen=True)
class Span:
    """A stretch of the call on the stream clock, with what it was."""

    start_s: float
    end_s: float
    text: str = ""
    turn_id: int | None = None
    interrupted: bool = False


@dataclass
class CallTimeline:
    """Everything one call did, in order, on the stream clock (seconds)."""

    call_sid: str
    events: list[CallEvent] = field(default_factory=list)
    origin_s: float = 0.0
    """Where the stream's t = 0 lay on the server's call clock (subtracted from its events)."""
    started_at: float | None = None
    """Unix time the call started."""
    duration_s: float | None = None
    end_reason: str | None = None
    audio_path: str | None = None
    record_id: int | None = None

    @classmethod
    def from_detail(cls, detail: CallDetail) -> CallTimeline:
        """A stored call's timeline (its events moved from the call clock to the stream's)."""
        origin = 0.0
        for event in detail.events:
            value = event.data.get("origin_s") if event.kind == "stream" else None
            if isinstance(value, int | float):
                origin = float(value)
        call = detail.call
        events = [shift(e, -origin) for e in detail.events if e.kind != "stream"]
        events.sort(key=lambda e: e.at_s)
        return cls(
            call_sid=call.call_sid,
            events=events,
            origin_s=origin,
            started_at=call.started_at,
            duration_s=call.duration_s,
            end_reason=call.end_reason,
            audio_path=call.audio_path,
            record_id=call.id,
        )

    def stored_events(self, events: Iterable[CallEvent]) -> list[CallEvent]:
        """Stream-clock ``events`` moved onto the server's call clock, as a store keeps them."""
        return [shift(e, self.origin_s) for e in events]

    def add(self, events: Iterable[CallEvent]) -> None:
        """Add stream-clock events (e.g. the caller's side) and keep the order."""
        self.events.extend(events)
        self.events.sort(key=lambda e: e.at_s)

    def of(self, *kinds: str) -> Iterator[CallEvent]:
        """The events of these kinds, in order."""
        wanted = set(kinds)
        return (e for e in self.events if e.kind in wanted)

    @property
    def has_server_side(self) -> bool:
        """Whether the server's record is in the timeline (not only the caller's view)."""
        return any(e.kind not in CALLER_SIDE for e in self.events)

    @property
    def has_caller_side(self) -> bool:
        """Whether the caller's own view (an eval's) is in the timeline."""
        return any(e.kind in CALLER_SIDE for e in self.events)

    # -- spans --------------------------------------------------------------------------------

    def speech_spans(self) -> list[Span]:
        """The caller's speech as the server's VAD heard it."""
        spans, start = [], None
        for e in self.of("speech_start", "speech_end"):
            if e.kind == "speech_start":
                start = e.at_s if start is None else start
            elif start is not None:
                spans.append(Span(start, max(start, e.at_s)))
                start = None
        if start is not None:
            spans.append(Span(start, self.end_s()))
        return spans

    def agent_spans(self) -> list[Span]:
        """Each agent turn from when it started playing to when it finished or was cut."""
        plays = {e.turn_id: e.data.get("play_at_s", e.at_s) for e in self.of("agent_audio")}
        spans = []
        for e in self.of("agent"):
            start = e.data.get("started_s")
            if not isinstance(start, int | float):
                start = plays.get(e.turn_id, e.at_s)
            text = e.text or ""
            spans.append(Span(float(start), e.at_s, text, e.turn_id, bool(e.interrupted)))
        return spans

    def caller_lines(self) -> list[Span]:
        """What the caller said (the caller's side): the line's words, its index as ``turn_id``."""
        return [
            Span(e.at_s, float(e.data.get("end_s", e.at_s)), e.text, e.data.get("index"))
            for e in self.of("caller_line")
        ]

    def heard_spans(self) -> list[Span]:
        """Agent audio as it reached the caller (the caller's side)."""
        return [Span(e.at_s, float(e.data.get("end_s", e.at_s))) for e in self.of("caller_heard")]

    def end_s(self) -> float:
        """The last moment the timeline knows of."""
        ends = [e.at_s for e in self.events]
        ends += [float(e.data["end_s"]) for e in self.events if "end_s" in e.data]
        if self.duration_s is not None:
            ends.append(self.duration_s - self.origin_s)
        return max(ends, default=0.0)

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``latencies`` included, per committed turn)."""
        from voiceagent.timeline.latency import turn_latencies

        return {
            "call_sid": self.call_sid,
            "record_id": self.record_id,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "end_reason": self.end_reason,
            "audio_path": self.audio_path,
            "origin_s": self.origin_s,
            "events": [event_dict(e) for e in self.events],
            "latencies": [t.to_dict() for t in turn_latencies(self)],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CallTimeline:
        """The inverse of :meth:`to_dict` (``latencies`` are recomputed, not read)."""
        return cls(
            call_sid=raw.get("call_sid", ""),
            events=[event_from_dict(e) for e in raw.get("events", [])],
            origin_s=float(raw.get("origin_s") or 0.0),
            started_at=raw.get("started_at"),
            duration_s=raw.get("duration_s"),
            end_reason=raw.get("end_reason"),
            audio_path=raw.get("audio_path"),
            record_id=raw.get("record_id"),
        )
