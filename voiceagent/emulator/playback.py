"""Twilio's outbound playback buffer, as the caller hears it.

Agent audio arriving over the stream is appended to a buffer that plays continuously at real
time; audio arriving while the buffer is empty plays at once. A ``mark`` is echoed when playback
passes the point where it arrived (at once if the buffer is empty). ``clear`` drops everything
unplayed and echoes every outstanding mark at once. The played timeline, with silence wherever
nothing played, is what the caller heard.

Positions are 8 kHz sample indexes since the stream started; time comes from a ``Clock`` so the
logic is tested with ``ManualClock``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voiceagent.clock import Clock, TimerHandle
from voiceagent.emulator.audio import PHONE_SAMPLE_RATE, ULAW_SILENCE, ulaw_decode

# Playback that resumes within this gap continues the same agent utterance: an underrun glitch
# when it ran dry inside a segment, a pause when it ran dry at a segment's mark.
UTTERANCE_GAP_S = 0.25
_COMPACT_BYTES = 65536

EventCallback = Callable[[str, dict], None]


@dataclass(frozen=True)
class AgentState:
    """What the caller can tell about the agent's audio at one moment (stream seconds)."""

    playing: bool
    last_audio_s: float | None  # when agent audio last played (now, if playing)
    last_start_s: float | None  # start of the most recent agent utterance
    last_clear_s: float | None = None  # when the latest ``clear`` dropped the unplayed audio


class PlaybackTimeline:
    """Plays agent audio the way Twilio does and records what the caller heard."""

    def __init__(
        self,
        clock: Clock,
        *,
        on_mark: Callable[[str], None] | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        """Create an idle timeline.

        Args:
            clock: time source; its timers schedule mark echoes.
            on_mark: called with a mark's name when it is due to be echoed to the server.
            on_event: called with ``agent_audio_start``, ``agent_audio_end``, ``mark``, ``clear``.
        """
        self._clock = clock
        self._on_mark = on_mark
        self._on_event = on_event
        self._t0: float | None = None
        self._heard = bytearray()  # μ-law, played timeline from position 0 up to its length
        self._pending = bytearray()  # μ-law not yet played; starts at _pending_off
        self._pending_off = 0
        self._play_pos = 0  # where pending audio plays next (= end of played audio when idle)
        self._marks: deque[tuple[int, str, int]] = deque()  # (due position, name, received pos)
        self._runs: list[list[int]] = []  # contiguous played stretches [start, end)
        self._utterances: list[list[int]] = []  # runs merged across short gaps
        self._utterance_open = False
        self._timer: TimerHandle | None = None
        self.media_received = 0
        self.marks_received = 0
        self.marks_released = 0
        self.clears = 0
        self._last_clear: int | None = None  # position of the latest clear
        self.glitches = 0
        self.pauses = 0
        self.discarded_samples = 0
        self._mark_last = False  # the last server message that carried audio order was a mark
        self._cleared_last = False  # ...was a clear

    # ----- time -----------------------------------------------------------------------------

    def start(self) -> None:
        """Mark the start of the stream (position 0 is now)."""
        self._t0 = self._clock.now()

    def now_s(self) -> float:
        """Seconds since the stream started."""
        if self._t0 is None:
            self.start()
        return self._clock.now() - self._t0  # type: ignore[operator]

    def _now_pos(self) -> int:
        return max(0, round(self.now_s() * PHONE_SAMPLE_RATE))

    # ----- server messages ------------------------------------------------------------------

    def receive_media(self, ulaw: bytes) -> None:
        """Queue agent μ-law audio; it plays at once if nothing is playing."""
        self.media_received += 1
        if not ulaw:
            return
        now = self._now_pos()
        self._advance(now)
        if not self._buffered():
            self._pending.clear()
            self._pending_off = 0
            self._play_pos = now
            self._runs.append([now, now])
            if self._utterance_open:
                if self._mark_last:
                    self.pauses += 1  # between two spoken segments: a pause, not a dropout
                elif not self._cleared_last:  # after a clear the server meant the silence
                    self.glitches += 1
            else:
                self._utterances.append([now, now])
                self._utterance_open = True
                self._emit("agent_audio_start", {"t": now / PHONE_SAMPLE_RATE})
        self._pending += ulaw
        self._mark_last = self._cleared_last = False
        self._reschedule()

    def receive_mark(self, name: str) -> None:
        """Note a mark; it is echoed once the audio queued before it has played."""
        self.marks_received += 1
        self._mark_last = True
        now = self._now_pos()
        self._advance(now)
        if self._buffered():
            self._marks.append((self._play_pos + self._buffered(), name, now))
            self._reschedule()
        else:
            self._release(name, now, now, cleared=False)

    def clear(self) -> list[str]:
        """Drop unplayed audio and echo every outstanding mark at once; returns their names."""
        self.clears += 1
        now = self._now_pos()
        self._advance(now)
        self._last_clear = now
        discarded = self._buffered()
        self.discarded_samples += discarded
        self._pending.clear()
        self._pending_off = 0
        self._cleared_last = True
        names = [name for _, name, _ in self._marks]
        self._emit(
            "clear",
            {
                "t": now / PHONE_SAMPLE_RATE,
                "discarded_s": discarded / PHONE_SAMPLE_RATE,
                "marks": names,
            },
        )
        while self._marks:
            _, name, received = self._marks.popleft()
            self._release(name, received, now, cleared=True)
        self._reschedule()
        return names

    # ----- queries --------------------------------------------------------------------------

    def agent_state(self) -> AgentState:
        """The agent's audio as heard right now."""
        now = self._now_pos()
        self._advance(now)
        playing = self._buffered() > 0
        last = None
        if playing:
            last = now / PHONE_SAMPLE_RATE
        elif self._runs:
            last = self._runs[-1][1] / PHONE_SAMPLE_RATE
        start = self._utterances[-1][0] / PHONE_SAMPLE_RATE if self._utterances else None
        cleared = None if self._last_clear is None else self._last_clear / PHONE_SAMPLE_RATE
        return AgentState(
            playing=playing, last_audio_s=last, last_start_s=start, last_clear_s=cleared
        )

    @property
    def outstanding_marks(self) -> list[str]:
        """Names of marks received but not yet echoed."""
        return [name for _, name, _ in self._marks]

    def utterance_starts_s(self) -> list[float]:
        """Start of each agent utterance (stretches of playback split by ≥ UTTERANCE_GAP_S)."""
        return [start / PHONE_SAMPLE_RATE for start, _ in self._utterances]

    def played_s_between(self, start_s: float, end_s: float | None = None) -> float:
        """Seconds of agent audio played within ``[start_s, end_s)`` of stream time."""
        self._advance(self._now_pos())
        lo = round(start_s * PHONE_SAMPLE_RATE)
        hi = None if end_s is None else round(end_s * PHONE_SAMPLE_RATE)
        total = 0
        for a, b in self._runs:
            top = b if hi is None else min(b, hi)
            total += max(0, top - max(a, lo))
        return total / PHONE_SAMPLE_RATE

    def heard_pcm(self, start_s: float, samples: int) -> bytes:
        """What the caller heard from ``start_s`` on, ``samples`` long (PCM16).

        Silence where nothing played; audio not played yet reads as silence too.
        """
        self._advance(self._now_pos())
        start = max(0, round(start_s * PHONE_SAMPLE_RATE))
        piece = bytes(self._heard[start : start + samples])
        piece += bytes((ULAW_SILENCE,)) * (samples - len(piece))
        return ulaw_decode(piece)

    def finish(self) -> bytes:
        """Stop playback now (the call ended) and return what was heard as 8 kHz PCM16."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._now_pos()
        self._advance(now)
        self._pending.clear()
        self._pending_off = 0
        self._fill_silence(now)
        if self._utterance_open:  # the call ended while the agent was (just) speaking
            self._utterance_open = False
            start, end = self._utterances[-1]
            self._emit(
                "agent_audio_end",
                {"t": end / PHONE_SAMPLE_RATE, "duration_s": (end - start) / PHONE_SAMPLE_RATE},
            )
        return ulaw_decode(bytes(self._heard))

    # ----- internals ------------------------------------------------------------------------

    def _buffered(self) -> int:
        return len(self._pending) - self._pending_off

    def _fill_silence(self, position: int) -> None:
        gap = position - len(self._heard)
        if gap > 0:
            self._heard.extend(bytes((ULAW_SILENCE,)) * gap)

    def _advance(self, now: int) -> None:
        """Play buffered audio up to position ``now``, echo marks it passed, close utterances."""
        buffered = self._buffered()
        if buffered:
            played = min(buffered, now - self._play_pos)
            if played > 0:
                self._fill_silence(self._play_pos)
                off = self._pending_off
                self._heard += self._pending[off : off + played]
                self._pending_off = off + played
                self._play_pos += played
                self._runs[-1][1] = self._play_pos
                self._utterances[-1][1] = self._play_pos
                if self._pending_off >= _COMPACT_BYTES or self._pending_off == len(self._pending):
                    del self._pending[: self._pending_off]
                    self._pending_off = 0
        while self._marks and self._marks[0][0] <= self._play_pos:
            pos, name, received = self._marks.popleft()
            self._release(name, received, pos, cleared=False)
        gap = round(UTTERANCE_GAP_S * PHONE_SAMPLE_RATE)
        if self._utterance_open and not self._buffered() and now - self._play_pos >= gap:
            self._utterance_open = False
            start, end = self._utterances[-1]
            self._emit(
                "agent_audio_end",
                {"t": end / PHONE_SAMPLE_RATE, "duration_s": (end - start) / PHONE_SAMPLE_RATE},
            )

    def _release(self, name: str, received: int, at: int, *, cleared: bool) -> None:
        self.marks_released += 1
        self._emit(
            "mark",
            {
                "name": name,
                "t": at / PHONE_SAMPLE_RATE,
                "received_t": received / PHONE_SAMPLE_RATE,
                "cleared": cleared,
            },
        )
        if self._on_mark is not None:
            self._on_mark(name)

    def _reschedule(self) -> None:
        """Arm one timer for the next due mark or the end of the current utterance."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due: int | None = None
        if self._marks:
            due = self._marks[0][0]
        elif self._utterance_open:
            due = self._play_pos + self._buffered() + round(UTTERANCE_GAP_S * PHONE_SAMPLE_RATE)
        if due is None or self._t0 is None:
            return
        delay = self._t0 + due / PHONE_SAMPLE_RATE - self._clock.now()
        self._timer = self._clock.call_later(max(0.0, delay), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._advance(self._now_pos())
        self._reschedule()

    def _emit(self, kind: str, data: dict) -> None:
        if self._on_event is not None:
            self._on_event(kind, data)
