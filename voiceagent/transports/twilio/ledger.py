"""Twilio-side playback, estimated: how much audio Twilio holds, and what the caller heard.

:class:`PlayoutPacer` tracks when Twilio will have played everything sent so far, which
decides when the next 20 ms frame may be sent.

:class:`PlaybackLedger`: an agent turn is a sequence of *segments* (the audio of one
``TTSTextFrame`` and its text). After each segment's audio the output sends a ``mark``;
Twilio echoes it once that audio has played. A ``clear`` (barge-in) makes Twilio echo every
outstanding mark at once, so echoes after a clear prove nothing: :meth:`PlaybackLedger.on_clear`
invalidates them and estimates how far into the segment being played the caller got from the
output's own clock: the turn's audio sent so far minus what the pacer says Twilio still holds
(so a paused turn is not counted as played), never past the previous mark's echo plus the time
since it. A *soft* clear (the agent paused at the caller's first sound, to go on if it was not a
barge-in) is different: the audio Twilio had not played is taken back to be sent again
(:meth:`PlaybackLedger.take_back`), and each mark after it is sent again under a new name
(:meth:`PlaybackLedger.resend_mark`), so the echo the clear makes of the old name proves nothing
while the turn goes on.

:class:`PlayoutTap`: what the output tells about its playout (the call recorder listens).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from voiceagent.clock import DEFAULT_CLOCK, Clock

_WORD = re.compile(r"\S+")
FRAME_S = 0.02
"""One Twilio media frame: 160 μ-law bytes at 8 kHz."""


class PlayoutPacer:
    """When the next 20 ms frame may go out so Twilio holds at most ``lead_s`` of audio.

    ``play_end`` estimates when Twilio finishes playing everything sent so far; a frame
    may be sent once ``play_end + frame_s - lead_s <= now`` (the next-send-time pattern).
    """

    __slots__ = ("lead_s", "frame_s", "play_end")

    def __init__(self, lead_s: float, frame_s: float = FRAME_S) -> None:
        self.lead_s = lead_s
        self.frame_s = frame_s
        self.play_end = float("-inf")

    def next_send_time(self) -> float:
        """Earliest time the next frame may be sent."""
        return self.play_end + self.frame_s - self.lead_s

    def send_delay(self, now: float) -> float:
        """Seconds to wait before sending the next frame (0 if it may go now)."""
        return max(0.0, self.next_send_time() - now)

    def on_sent(self, now: float, duration: float | None = None) -> None:
        """A frame of ``duration`` seconds (default one frame) was sent at ``now``."""
        self.play_end = max(self.play_end, now) + (self.frame_s if duration is None else duration)

    def on_clear(self, now: float) -> None:
        """Twilio's buffer was flushed: nothing is left to play."""
        self.play_end = min(self.play_end, now)

    def buffered(self, now: float) -> float:
        """Seconds of sent audio estimated still unplayed."""
        return max(0.0, self.play_end - now)


def cut_at_word(text: str, fraction: float) -> str:
    """The prefix of ``text`` made of the words that end within ``fraction`` of its length."""
    if fraction <= 0.0 or not text:
        return ""
    if fraction >= 1.0:
        return text
    limit = fraction * len(text)
    end = 0
    for match in _WORD.finditer(text):
        if match.end() > limit:
            break
        end = match.end()
    return text[:end]


@dataclass(slots=True)
class Segment:
    """One TTS segment of an agent turn."""

    index: int
    mark: str
    text: str
    duration: float
    offset: float = 0.0  # where its audio starts in the turn's audio (seconds)
    echoed_at: float | None = None


@dataclass(slots=True)
class HeardReport:
    """The heard / unheard split of one agent turn."""

    turn_id: int
    text: str
    full_text: str
    interrupted: bool
    unheard_text: str
    in_context: bool = True


@dataclass(slots=True)
class _Turn:
    turn_id: int
    segments: list[Segment] = field(default_factory=list)
    sent_s: float = 0.0  # audio of this turn sent to Twilio so far
    pending_text: str = ""
    in_context: bool = True
    complete: bool = False
    cut_chars: int | None = None  # heard prefix length of the joined text, fixed at a clear


class PlaybackLedger:
    """Segments per agent turn and which of them the caller heard. Pure; clock-injected."""

    def __init__(
        self, clock: Clock = DEFAULT_CLOCK, buffered: Callable[[float], float] | None = None
    ) -> None:
        """Create the ledger.

        Args:
            clock: Time source.
            buffered: Seconds of sent audio Twilio still holds at a time (the pacer's estimate);
                None: everything sent counts as played.
        """
        self._clock = clock
        self._buffered = buffered
        self._turns: dict[int, _Turn] = {}
        self._outstanding: dict[str, tuple[_Turn, Segment]] = {}

    # -- building turns -------------------------------------------------------------------

    def start_turn(self, turn_id: int) -> None:
        """Open a turn (idempotent)."""
        self._turns.setdefault(turn_id, _Turn(turn_id))

    def add_segment(
        self, turn_id: int, mark: str, text: str, duration: float, *, in_context: bool = True
    ) -> Segment:
        """Record a segment whose audio (``duration`` s) is followed by mark ``mark``.

        ``in_context``: False for speech outside the conversation (a re-prompt).
        """
        turn = self._turns.setdefault(turn_id, _Turn(turn_id))
        if turn.pending_text:
            text = f"{turn.pending_text} {text}"
            turn.pending_text = ""
        if not in_context:
            turn.in_context = False
        index = len(turn.segments)
        last = turn.segments[-1] if turn.segments else None
        offset = last.offset + last.duration if last is not None else 0.0
        segment = Segment(index, mark, " ".join(text.split()), duration, offset)
        turn.segments.append(segment)
        self._outstanding[mark] = (turn, segment)
        return segment

    def add_text(self, turn_id: int, text: str) -> None:
        """Text that came without new audio: it belongs to the last segment (or the next one)."""
        turn = self._turns.setdefault(turn_id, _Turn(turn_id))
        text = " ".join(text.split())
        if not text:
            return
        if turn.segments:
            last = turn.segments[-1]
            last.text = f"{last.text} {text}" if last.text else text
        else:
            turn.pending_text = f"{turn.pending_text} {text}" if turn.pending_text else text

    def complete_turn(self, turn_id: int) -> None:
        """No more segments will be added to this turn (TTS stopped)."""
        turn = self._turns.get(turn_id)
        if turn is not None:
            turn.complete = True

    def on_sent(self, turn_id: int, seconds: float = FRAME_S) -> None:
        """``seconds`` more of the turn's audio went to Twilio (per frame: no allocation)."""
        turn = self._turns.get(turn_id)
        if turn is not None:
            turn.sent_s += seconds

    def take_back(self, turn_id: int, seconds: float) -> None:
        """A soft clear dropped ``seconds`` of the turn's sent audio unplayed; it goes again."""
        turn = self._turns.get(turn_id)
        if turn is not None:
            turn.sent_s = max(0.0, turn.sent_s - seconds)

    def resend_mark(self, name: str, new_name: str) -> bool:
        """Mark ``name`` is sent again as ``new_name`` (a soft clear dropped the audio before it).

        Only the new name's echo proves its segment played; the clear's echo of the old name
        proves nothing. False if ``name`` was not outstanding (echoed, or its turn closed).
        """
        entry = self._outstanding.pop(name, None)
        if entry is None:
            return False
        entry[1].mark = new_name
        self._outstanding[new_name] = entry
        return True

    # -- playback evidence ----------------------------------------------------------------

    def on_mark(self, name: str, now: float | None = None) -> int | None:
        """A mark echo: the turn it proves heard audio of, or ``None`` if it proves nothing."""
        entry = self._outstanding.pop(name, None)
        if entry is None:
            return None
        turn, segment = entry
        segment.echoed_at = self._clock.now() if now is None else now
        return turn.turn_id

    def on_clear(self, now: float | None = None) -> None:
        """A ``clear`` was sent: fix each open turn's heard prefix; later echoes prove nothing."""
        at = self._clock.now() if now is None else now
        for turn in self._turns.values():
            if turn.cut_chars is None and not self._all_echoed(turn):
                turn.cut_chars = self._heard_chars(turn, at)
        self._outstanding.clear()

    # -- reading ----------------------------------------------------------------------------

    def is_outstanding(self, name: str) -> bool:
        """Whether mark ``name`` was recorded and its echo has not come (nor been voided)."""
        return name in self._outstanding

    def has_turn(self, turn_id: int) -> bool:
        """Whether the turn is open in the ledger."""
        return turn_id in self._turns

    def is_fully_played(self, turn_id: int) -> bool:
        """Whether the turn is complete and every segment's mark was echoed before any clear."""
        turn = self._turns.get(turn_id)
        return (
            turn is not None and turn.complete and turn.cut_chars is None and self._all_echoed(turn)
        )

    def full_text(self, turn_id: int) -> str:
        """Everything the agent meant to say in this turn (segments so far)."""
        turn = self._turns.get(turn_id)
        return self._joined(turn)[0] if turn else ""

    def heard_text(self, turn_id: int, now: float | None = None) -> str:
        """Acknowledged segments plus the played fraction of the segment being played."""
        turn = self._turns.get(turn_id)
        if turn is None:
            return ""
        full = self._joined(turn)[0]
        chars = turn.cut_chars
        if chars is None:
            chars = self._heard_chars(turn, self._clock.now() if now is None else now)
        return full[:chars].rstrip()

    def close_turn(
        self, turn_id: int, *, interrupted: bool, now: float | None = None
    ) -> HeardReport:
        """Forget the turn and report what was heard.

        A turn closed without interruption played to the end (its marks echoed, or its
        estimated play-out ended), so all of it counts as heard.
        """
        turn = self._turns.pop(turn_id, None)
        if turn is None:
            return HeardReport(turn_id, "", "", interrupted, "")
        for segment in turn.segments:
            self._outstanding.pop(segment.mark, None)
        full = self._joined(turn)[0]
        if interrupted:
            chars = turn.cut_chars
            if chars is None:
                chars = self._heard_chars(turn, self._clock.now() if now is None else now)
        else:
            chars = len(full)
        heard = full[:chars].rstrip()
        return HeardReport(
            turn_id, heard, full, interrupted, full[chars:].strip(), in_context=turn.in_context
        )

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _all_echoed(turn: _Turn) -> bool:
        return all(segment.echoed_at is not None for segment in turn.segments)

    @staticmethod
    def _joined(turn: _Turn | None) -> tuple[str, list[int]]:
        """The turn's text and the start offset of each segment in it."""
        if turn is None:
            return "", []
        parts: list[str] = []
        starts: list[int] = []
        length = 0
        for segment in turn.segments:
            if parts and segment.text:
                length += 1  # the joining space
            starts.append(length)
            if segment.text:
                parts.append(segment.text)
                length += len(segment.text)
        return " ".join(parts), starts

    def _heard_chars(self, turn: _Turn, now: float) -> int:
        full, starts = self._joined(turn)
        buffered = self._buffered(now) if self._buffered is not None else 0.0
        played = max(0.0, turn.sent_s - buffered)  # the turn's audio the caller has heard
        heard = 0
        previous_echo: float | None = None
        for segment, start in zip(turn.segments, starts, strict=True):
            if segment.echoed_at is not None:
                heard = start + len(segment.text)
                previous_echo = segment.echoed_at
                continue
            position = played
            if previous_echo is not None:
                position = min(position, segment.offset + max(0.0, now - previous_echo))
            into = position - segment.offset
            if into <= 0.0:
                break  # none of it played
            fraction = into / segment.duration if segment.duration > 0.0 else 1.0
            part = cut_at_word(segment.text, fraction)
            if part:
                heard = start + len(part)
            break
        return min(heard, len(full))


class PlayoutTap(Protocol):
    """Told what TwilioOutput sends (e.g. the call recorder). Must be cheap and never raise."""

    def agent_audio(self, turn_id: int, audio: bytes, play_at: float) -> None:
        """A 20 ms line-format frame of agent turn ``turn_id`` went out; plays from ``play_at``."""

    def agent_cleared(self, at: float) -> None:
        """A ``clear`` was sent at ``at`` (barge-in): Twilio drops what it had not played yet."""

    def agent_paused(self, at: float, held_s: float) -> None:
        """A soft ``clear`` was sent at ``at``: ``held_s`` of unplayed audio is sent again later."""

    def agent_mark(self, name: str, at: float) -> None:
        """Mark ``name`` was sent at ``at`` (Twilio echoes it once the audio before it played)."""
