"""What happened on one eval call, line by line: the caller's report joined with the server's.

The caller emulator knows when each line was spoken, when agent audio started and when Twilio
was told to ``clear``; the server's record of the call (its timeline, any bot) knows what the
agent committed as the caller's words and what the caller heard of each agent turn. Both are
on the call's stream clock and each server event is given to the line it answers:

- a caller commit belongs to the last line that had started when it was committed;
- an agent turn (reported when it finished playing or was cut) belongs to the last line whose
  reply had started playing by then, backchannels aside (a reply plays on through an "uh-huh");
  before any reply it is the greeting;
- a ``clear`` that dropped audio is placed like an agent turn.

Pure functions of recorded data, so the checks are tested on recordings without a call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voiceagent.emulator.caller import CallReport
from voiceagent.eval.scenario import LineKind, Scenario
from voiceagent.storage.store import CallEvent
from voiceagent.timeline.model import CallTimeline


@dataclass(frozen=True)
class TranscriptEntry:
    """One server transcript event on the stream clock.

    ``who`` is ``"caller"`` (a committed caller turn), ``"revision"`` (fuller words of the last
    committed turn, from a later transcript of its audio), ``"tool"`` (the agent called the
    tool ``text``) or ``"agent"`` (what the caller heard of one agent turn, with the turn's
    ``full_text`` and whether it was ``interrupted``).
    """

    who: str
    text: str
    at_s: float
    interrupted: bool = False
    full_text: str = ""


@dataclass
class ReplyObservation:
    """The agent turns that answered one line (or the greeting)."""

    heard: list[str] = field(default_factory=list)
    full: list[str] = field(default_factory=list)
    interrupted: bool | None = None
    """From the transcript; without one, whether a ``clear`` dropped audio of the reply."""
    clears: int = 0

    @property
    def heard_text(self) -> str:
        """Everything the caller heard of the reply, in order."""
        return " ".join(text for text in self.heard if text)


@dataclass
class LineObservation:
    """One caller line and what followed it."""

    index: int
    said: str
    kind: str
    spoken: bool = False
    caller_start_s: float | None = None
    caller_end_s: float | None = None
    latency_ms: float | None = None
    """Caller end of speech → the first agent audio that started before the next line ended."""
    first_agent_audio_s: float | None = None
    agent_audio_s: float = 0.0
    understood: list[str] = field(default_factory=list)
    """Caller turns the agent committed while (or after) this line was spoken."""
    tools: list[str] = field(default_factory=list)
    """Tools the agent called while (or after) this line was spoken."""
    reply: ReplyObservation = field(default_factory=ReplyObservation)


@dataclass
class CallObservation:
    """One scenario call as observed by both sides."""

    scenario: str
    call_sid: str = ""
    transcript: bool = False
    """True when the server's transcript was available (an in-process server)."""
    greeting: ReplyObservation = field(default_factory=ReplyObservation)
    lines: list[LineObservation] = field(default_factory=list)
    duration_s: float = 0.0
    clears: int = 0
    closed_by_server: bool = False
    close: str = ""
    """The server's WebSocket close code and reason, when it closed the call."""
    error: str | None = None


def observe_call(
    scenario: Scenario,
    report: CallReport | None,
    transcript: list[TranscriptEntry] | None,
    clears: list[tuple[float, float]],
    *,
    error: str | None = None,
) -> CallObservation:
    """Join the caller's report, the server transcript and the clears into per-line facts.

    Args:
        scenario: the call that was placed.
        report: the emulator's report (None when the call could not be placed).
        transcript: the server's transcript of this call on the stream clock, or None when the
            server is remote and reports none.
        clears: ``(stream time, seconds of agent audio dropped)`` of each ``clear``.
        error: why the call failed, if it did.
    """
    observation = CallObservation(
        scenario=scenario.name,
        transcript=transcript is not None,
        lines=[LineObservation(line.index, line.label, line.kind.value) for line in scenario.lines],
        error=error,
    )
    if report is None:
        return observation
    observation.call_sid = report.call_sid
    observation.duration_s = report.duration_s
    observation.clears = report.clears
    observation.closed_by_server = report.closed_by_server
    if report.closed_by_server and report.close_code is not None:
        observation.close = f"{report.close_code} {report.close_reason}".strip()
    for turn in report.turns:
        if not 0 <= turn.index < len(observation.lines):
            continue
        line = observation.lines[turn.index]
        line.spoken = True
        line.caller_start_s = turn.caller_start_s
        line.caller_end_s = turn.caller_end_s
        line.latency_ms = turn.latency_ms
        line.first_agent_audio_s = turn.first_agent_audio_s
        line.agent_audio_s = turn.agent_audio_s
    last_owner = None
    for entry in transcript or []:
        if entry.who == "caller":
            owner = last_owner = _caller_owner(observation.lines, entry.at_s)
            if owner is not None:
                owner.understood.append(entry.text)
        elif entry.who == "tool":
            owner = _caller_owner(observation.lines, entry.at_s)
            if owner is not None:
                owner.tools.append(entry.text)
        elif entry.who == "revision" and last_owner is not None and last_owner.understood:
            last_owner.understood[-1] = entry.text
        elif entry.who == "agent" and entry.text.strip():
            reply = _reply_owner(scenario, observation, entry.at_s)
            reply.heard.append(entry.text)
            reply.full.append(entry.full_text)
            reply.interrupted = bool(reply.interrupted) or entry.interrupted
    for at_s, dropped_s in clears:
        if dropped_s > 0:
            _reply_owner(scenario, observation, at_s).clears += 1
    first_line_s = min((t.caller_start_s for t in report.turns), default=report.duration_s)
    greeted = any(start < first_line_s for start in report.agent_utterances_s)
    replies = [(observation.greeting, greeted)]
    replies += [(line.reply, line.first_agent_audio_s is not None) for line in observation.lines]
    for reply, audible in replies:
        if transcript is None:  # judged from the caller's side: was audio of it dropped?
            reply.interrupted = reply.clears > 0 if audible else None
        elif reply.interrupted is None and reply.heard:
            reply.interrupted = False
    return observation


def _caller_owner(lines: list[LineObservation], at_s: float) -> LineObservation | None:
    started = [line for line in lines if line.caller_start_s is not None]
    owners = [line for line in started if line.caller_start_s <= at_s]
    return owners[-1] if owners else None


def _reply_owner(scenario: Scenario, observation: CallObservation, at_s: float) -> ReplyObservation:
    owner = observation.greeting
    for line, seen in zip(scenario.lines, observation.lines, strict=True):
        if line.kind is LineKind.BACKCHANNEL or seen.first_agent_audio_s is None:
            continue
        if seen.first_agent_audio_s <= at_s:
            owner = seen.reply
    return owner


def transcript_entries(timeline: CallTimeline) -> list[TranscriptEntry]:
    """The server's committed caller turns, revisions, tool calls and heard agent turns."""
    out = []
    for e in timeline.of("caller", "revision", "agent", "tool"):
        if e.kind == "agent" and not (e.full_text or e.text):
            continue
        if e.kind == "tool" and e.data.get("stage") != "call":
            continue
        out.append(
            TranscriptEntry(
                who=e.kind,
                text=e.text,
                at_s=e.at_s,
                interrupted=bool(e.interrupted),
                full_text=e.full_text or "",
            )
        )
    return out


def caller_side(scenario: Scenario, events: list[tuple[float, str, dict]]) -> list[CallEvent]:
    """The caller emulator's live events as timeline events (stream clock)."""
    out: list[CallEvent] = []
    starts: dict[int, dict] = {}
    audio_start: float | None = None
    kinds = {line.index: line.kind.value for line in scenario.lines}
    for _, kind, data in events:
        t = data.get("t")
        if not isinstance(t, int | float):
            continue
        if kind == "caller_line":
            starts[data["index"]] = data
        elif kind == "caller_line_end" and data.get("index") in starts:
            begun = starts.pop(data["index"])
            info = {"end_s": t, "index": data["index"], "kind": kinds.get(data["index"], "")}
            out.append(CallEvent("caller_line", begun["t"], text=begun.get("text", ""), data=info))
        elif kind == "agent_audio_start":
            audio_start = t
        elif kind == "agent_audio_end" and audio_start is not None:
            out.append(CallEvent("caller_heard", audio_start, data={"end_s": t}))
            audio_start = None
        elif kind == "clear":
            dropped = {"discarded_s": data.get("discarded_s", 0.0)}
            out.append(CallEvent("caller_clear", t, data=dropped))
    return out
