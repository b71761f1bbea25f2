"""Per-turn latency split by stage, read from a call's timeline.

For each committed caller turn, the milestones of its reply in order:

    end of speech ─ commit wait ─▶ commit ─ LLM first token ─▶ first token ─ first speakable
    chunk ─▶ chunk ─ TTS first audio ─▶ TTS audio ─ to the line ─▶ plays ─ network ─▶ heard

*End of speech* is when the caller stopped talking: the caller's own line end when the timeline
has the caller's side (an eval), else the server VAD's (back-dated) end of voice. *To the line* is
the output's part (pacing, a reply held while the caller's line is loud). *Network to the
caller* needs the caller's side: when the agent's first audio reached the caller's ear.
A stage whose milestone is missing (a fixed sentence has no LLM token) is None and the next
stage counts from the last milestone present, so the stages always add up to the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from voiceagent.storage.store import CallEvent
from voiceagent.timeline.model import CallTimeline

STAGES: tuple[tuple[str, str], ...] = (
    ("commit_wait", "commit wait"),
    ("llm_first_token", "LLM first token"),
    ("first_chunk", "first speakable chunk"),
    ("tts_first_audio", "TTS first audio"),
    ("to_line", "to the line"),
    ("network", "network to the caller"),
)
"""Stage keys with their names, in order."""
_MARKS = ("commit", "llm_first_token", "chunk", "tts_audio", "plays", "heard")
_EARLY_S = 0.002  # a milestone a hair before the previous one is the same moment (clock skew)
_HEARD_EARLY_S = 0.02  # the caller may hear the first frame a frame-time before "plays"


@dataclass(frozen=True)
class TurnLatency:
    """One committed caller turn's reply, milestone by milestone (stream-clock seconds)."""

    turn_id: int | None
    text: str
    end_of_speech_s: float | None
    end_of_speech_by: str
    """``caller`` (the caller's own line end) or ``vad`` (the server's VAD)."""
    marks: dict[str, float | None]

    @property
    def last_s(self) -> float | None:
        """The last milestone reached (``heard`` when the caller's side is known)."""
        present = [t for t in (self.marks.get(m) for m in _MARKS) if t is not None]
        return present[-1] if present else None

    @property
    def total_ms(self) -> float | None:
        """End of speech → the agent heard (or, without the caller's side, playing)."""
        last = self.last_s
        if last is None or self.end_of_speech_s is None or self.marks.get("plays") is None:
            return None
        return (last - self.end_of_speech_s) * 1000.0

    def stages_ms(self) -> dict[str, float | None]:
        """Each stage's milliseconds (None: its milestone is missing)."""
        out: dict[str, float | None] = {}
        previous = self.end_of_speech_s
        for (key, _), mark in zip(STAGES, _MARKS, strict=True):
            t = self.marks.get(mark)
            if t is None or previous is None:
                out[key] = None
            else:
                out[key] = (t - previous) * 1000.0
            if t is not None:
                previous = t
        return out

    def split_text(self) -> str:
        """``commit wait 220 + LLM first token 390 + … ms`` (the stages present)."""
        names = dict(STAGES)
        parts = [f"{names[k]} {v:.0f}" for k, v in self.stages_ms().items() if v is not None]
        return " + ".join(parts) + " ms" if parts else "no reply"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: milestones, stages in ms, total."""
        return {
            "turn_id": self.turn_id,
            "text": self.text,
            "end_of_speech_s": self.end_of_speech_s,
            "end_of_speech_by": self.end_of_speech_by,
            "marks": self.marks,
            "stages_ms": self.stages_ms(),
            "total_ms": self.total_ms,
        }


def _first(events: list[CallEvent], kind: str, after: float | None, before: float):
    if after is None:
        return None
    for e in events:
        if e.kind == kind and after - _EARLY_S <= e.at_s < before:
            return e
    return None


def turn_latencies(timeline: CallTimeline) -> list[TurnLatency]:
    """The latency of every committed caller turn's reply (keypad turns included)."""
    events = timeline.events
    commits = [e for e in events if e.kind == "caller"]
    lines = timeline.caller_lines()
    heard = timeline.heard_spans()
    out = []
    for n, commit in enumerate(commits):
        previous = commits[n - 1].at_s if n else -math.inf
        bound = commits[n + 1].at_s if n + 1 < len(commits) else math.inf
        end, by = _end_of_speech(timeline, lines, commit, previous)
        marks: dict[str, float | None] = dict.fromkeys(_MARKS)
        marks["commit"] = commit.at_s
        token = _first(events, "llm_first_token", commit.at_s, bound)
        chunk = _first(events, "chunk", token.at_s if token else commit.at_s, bound)
        tts = _first(events, "tts_audio", chunk.at_s if chunk else None, bound)
        audio = _first(events, "agent_audio", tts.at_s if tts else None, bound)
        marks["llm_first_token"] = token.at_s if token else None
        marks["chunk"] = chunk.at_s if chunk else None
        marks["tts_audio"] = tts.at_s if tts else None
        if audio is not None:
            plays = audio.data.get("play_at_s", audio.at_s)
            marks["plays"] = float(plays)
            sent = audio.at_s
            marks["heard"] = next(
                (s.start_s for s in heard if s.start_s >= sent - _HEARD_EARLY_S), None
            )
        out.append(TurnLatency(commit.turn_id, commit.text, end, by, marks))
    return out


def _end_of_speech(
    timeline: CallTimeline, lines: list, commit: CallEvent, previous: float
) -> tuple[float | None, str]:
    """When the caller stopped talking before ``commit``: their line's end, else the VAD's."""
    spoken = [s for s in lines if s.start_s <= commit.at_s]
    if spoken:
        return spoken[-1].end_s, "caller"
    ends = [e.at_s for e in timeline.of("speech_end") if previous < e.at_s <= commit.at_s]
    if ends:
        return ends[-1], "vad"
    return None, "vad"
