"""Drive a ``TurnEngine`` like a phone call: the caller speaks, the STT lags, time passes.

``Call`` keeps a clock in seconds from the call's start, fires the engine's deadlines as time
moves (like ``ManualClock``), and records every decision with the time it was taken. Words
get audio times spread over the stretch they were said in, as a streaming STT reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceagent.frames import AudioSpan, SpokenWord
from voiceagent.turns import decisions as d
from voiceagent.turns.engine import TurnEngine
from voiceagent.turns.options import TurnTaking
from voiceagent.turns.transcript import Transcript

T0 = 1000.0


def said(text: str, start: float, end: float) -> tuple[SpokenWord, ...]:
    """The words of ``text`` spoken evenly from ``start`` to ``end`` (seconds into the call)."""
    words = text.split()
    step = (end - start) / max(1, len(words))
    return tuple(
        SpokenWord(w, T0 + start + i * step, T0 + start + (i + 1) * step - 0.02)
        for i, w in enumerate(words)
    )


@dataclass
class Logged:
    t: float
    decision: d.Decision


class Call:
    """One scripted call against a fresh engine."""

    def __init__(self, options: TurnTaking | None = None, **option_overrides) -> None:
        if options is None:
            options = TurnTaking.model_validate(option_overrides) if option_overrides else None
        self.engine = TurnEngine(options)
        self.now = T0
        self.log: list[Logged] = []

    # -- time ----------------------------------------------------------------------------

    @property
    def t(self) -> float:
        """Seconds since the call started."""
        return round(self.now - T0, 6)

    def at(self, t: float) -> Call:
        """Move to ``t`` seconds into the call, firing due deadlines on the way."""
        target = T0 + t
        while True:
            due = self.engine.next_deadline(self.now)
            if due is None or due > target:
                break
            self.now = due
            self._record(self.engine.tick(self.now))
        self.now = max(self.now, target)
        return self

    def _record(self, decisions: list[d.Decision]) -> list[d.Decision]:
        t = self.t
        self.log += [Logged(t, x) for x in decisions]
        return decisions

    # -- the caller --------------------------------------------------------------------------

    def sound(self, on: bool, *, since_s: float = 0.0) -> list[d.Decision]:
        """The line turned loud/quiet; the detector needed ``since_s`` to be sure."""
        return self._record(self.engine.caller_sound(self.now, on, at=self.now - since_s))

    def speech_start(self, began: float | None = None) -> list[d.Decision]:
        """VAD start now; the speech began at ``began`` (default: now)."""
        at = self.now if began is None else T0 + began
        return self._record(self.engine.speech_started(self.now, at))

    def speech_stop(self, ended: float | None = None) -> list[d.Decision]:
        at = self.now if ended is None else T0 + ended
        return self._record(self.engine.speech_stopped(self.now, at))

    def starts_speaking(self, start: float, *, vad_at: float) -> None:
        """The caller's sound from ``start``; the VAD confirms it as speech at ``vad_at``."""
        self.at(start)
        self.sound(True)
        self.at(vad_at)
        self.speech_start(began=start)

    def speaks(self, start: float, end: float) -> None:
        """The caller's voice from ``start`` to ``end``: sound, VAD (0.3 s late, stop 0.2 s)."""
        self.starts_speaking(start, vad_at=start + 0.3)
        self.at(end + 0.1)
        self.sound(False)
        self.at(end + 0.2)
        self.speech_stop(ended=end)

    def partial(
        self, text: str, start: float | None = None, end: float | None = None, *, said_from=None
    ) -> list[d.Decision]:
        return self._stt(text, False, start, end, said_from)

    def final(
        self, text: str, start: float | None = None, end: float | None = None, *, said_from=None
    ) -> list[d.Decision]:
        return self._stt(text, True, start, end, said_from)

    def _stt(self, text, final, start, end, said_from) -> list[d.Decision]:
        span = None
        if start is not None and end is not None:
            lo, hi = said_from if said_from is not None else (start, end)
            span = AudioSpan(T0 + start, T0 + end, said(text, lo, hi) if text else ())
        transcript = Transcript(text, final, self.now, span)
        return self._record(self.engine.transcript(self.now, transcript))

    def dtmf(self, digit: str) -> list[d.Decision]:
        return self._record(self.engine.dtmf(self.now, digit))

    # -- the agent ---------------------------------------------------------------------------

    def agent_starts(self) -> list[d.Decision]:
        return self._record(self.engine.agent_started(self.now))

    def agent_stops(self) -> list[d.Decision]:
        return self._record(self.engine.agent_stopped(self.now))

    def heard(self, text: str, *, interrupted=False, unheard="", in_context=True):
        return self._record(
            self.engine.agent_heard(
                self.now, text, interrupted=interrupted, unheard=unheard, in_context=in_context
            )
        )

    # -- reading -----------------------------------------------------------------------------

    def of(self, kind: type) -> list:
        return [x.decision for x in self.log if isinstance(x.decision, kind)]

    def when(self, kind: type) -> list[float]:
        return [x.t for x in self.log if isinstance(x.decision, kind)]

    @property
    def commits(self) -> list[d.Commit]:
        return self.of(d.Commit)

    @property
    def user_messages(self) -> list[str]:
        return [m["content"] for m in self.engine.conversation.messages if m["role"] == "user"]
