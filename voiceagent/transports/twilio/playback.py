"""What the caller heard, judged from the sending side of a pipecat serializer.

Pipecat's WebSocket transports hand their ``FrameSerializer`` each frame as they send it: agent
audio chunk by chunk and the ``clear`` of a barge-in; :class:`~voiceagent.transports.twilio.
marks.TwilioMarks` (placed before the transport's output) adds each agent turn's *plan* (its
segments: text and audio length, as the TTS makes them) and, in send order, where each turn's
audio starts and each segment ends. :class:`StreamPlayback` keeps from those the evidence
:class:`~voiceagent.transports.twilio.output.TwilioOutput` keeps: a :class:`PlayoutPacer` of
what Twilio still holds, a :class:`PlaybackLedger` of segments and marks, and a
:class:`~voiceagent.transports.twilio.ledger.HeardReport` per agent turn once its last mark
echoed (played out) or a ``clear`` cut it. Pure and clock-injected; the serializer does the I/O.
"""

from __future__ import annotations

from collections import deque

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.transports.twilio.ledger import HeardReport, PlaybackLedger, PlayoutPacer

_UNPLANNED = -1
"""Turn id for audio that came without any plan (no ``TwilioMarks`` before the output)."""


class StreamPlayback:
    """One stream's agent turns: their plans, what was sent, marks, clears and heard reports."""

    def __init__(self, clock: Clock = DEFAULT_CLOCK, *, lead_s: float = 0.2) -> None:
        """Create the tracker.

        Args:
            clock: Time source of the pacer and the ledger.
            lead_s: How far ahead of real time audio may be sent (Twilio's buffer).
        """
        self.pacer = PlayoutPacer(lead_s)
        self.ledger = PlaybackLedger(clock, buffered=self.pacer.buffered)
        self.reports: deque[HeardReport] = deque()
        """Turns finished (played out or cut), oldest first, not yet handed on."""
        self._open: dict[int, bool] = {}  # planned turns not yet reported: id → audio sent
        self._complete: set[int] = set()
        self._sending: int | None = None
        self._syncs = 0

    # -- the plan (at once, as the TTS makes it) -----------------------------------------------

    def plan_turn(self, turn_id: int) -> None:
        """A new agent turn."""
        self._open.setdefault(turn_id, False)
        self.ledger.start_turn(turn_id)

    def plan_segment(
        self, turn_id: int, mark: str, text: str, seconds: float, *, in_context: bool = True
    ) -> None:
        """The turn's next ``seconds`` of audio said ``text``; ``mark`` follows them."""
        self.plan_turn(turn_id)
        self.ledger.add_segment(turn_id, mark, text, seconds, in_context=in_context)

    def plan_end(self, turn_id: int) -> None:
        """The turn has no more segments."""
        self._complete.add(turn_id)
        self.ledger.complete_turn(turn_id)
        self._report_if_played(turn_id)

    # -- sending (in order) ---------------------------------------------------------------------

    def send_delay(self, now: float, seconds: float) -> float:
        """Seconds to wait before sending ``seconds`` of audio so Twilio holds at most the lead."""
        pacer = self.pacer
        return max(0.0, pacer.play_end + seconds - pacer.lead_s - now)

    def sending(self, turn_id: int) -> None:
        """The audio sent from now on is turn ``turn_id`` 's."""
        self._sending = turn_id if turn_id in self._open else None

    def audio_sent(self, seconds: float, now: float) -> None:
        """``seconds`` of agent audio went out at ``now``."""
        self.pacer.on_sent(now, seconds)
        turn_id = self._sending
        if turn_id is None:  # audio nobody planned: a turn of its own, without text
            turn_id = self._sending = _UNPLANNED
            self.plan_turn(turn_id)
        self.ledger.on_sent(turn_id, seconds)
        self._open[turn_id] = True

    # -- evidence from Twilio, barge-in ---------------------------------------------------------

    def on_mark(self, name: str) -> None:
        """Twilio echoed mark ``name``; a complete turn whose marks all echoed is reported."""
        turn_id = self.ledger.on_mark(name)
        if turn_id is not None:
            self._report_if_played(turn_id)

    def clear(self, now: float) -> bool:
        """A barge-in: every open turn is cut where the caller got to.

        A turn none of whose audio was sent yet (still queued in the transport, dropped with
        it) is forgotten without a report: each report rides on a mark echo, and after a
        ``clear`` Twilio echoes one outstanding mark per turn it was playing, plus the sync mark.

        Returns whether Twilio holds anything to drop (a ``clear`` is worth sending).
        """
        unplayed = any(self._open.values()) or self.pacer.buffered(now) > 0.0
        if unplayed:
            self.ledger.on_clear(now)
        self.pacer.on_clear(now)
        for turn_id, sent_any in list(self._open.items()):
            if sent_any:
                self._report(turn_id, interrupted=True)
            else:
                self._open.pop(turn_id)
                self._complete.discard(turn_id)
                self.ledger.close_turn(turn_id, interrupted=True)
        self._sending = None
        return unplayed

    def sync_mark(self) -> str | None:
        """A mark to send right after a ``clear`` when reports wait for an echo to carry them.

        With nothing left in Twilio's buffer, it is echoed at once.
        """
        if not self.reports:
            return None
        self._syncs += 1
        return f"sync{self._syncs}"

    # -- internals ------------------------------------------------------------------------------

    def _report_if_played(self, turn_id: int) -> None:
        if turn_id in self._complete and self.ledger.is_fully_played(turn_id):
            self._report(turn_id, interrupted=False)

    def _report(self, turn_id: int, *, interrupted: bool) -> None:
        sent_any = self._open.pop(turn_id, False)
        self._complete.discard(turn_id)
        if self._sending == turn_id:
            self._sending = None
        report = self.ledger.close_turn(turn_id, interrupted=interrupted)
        if report.full_text or sent_any:
            self.reports.append(report)
