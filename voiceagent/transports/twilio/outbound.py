"""The outbound queue of :class:`~voiceagent.transports.twilio.output.TwilioOutput`.

Agent turns are cut into the items the sender task sends, in order: exact 20 ms media frames
in the stream's line format (Twilio: 160 bytes of 8 kHz μ-law), a ``mark`` after each TTS
segment (the audio before a ``TTSTextFrame``), and a turn end. A TTS that sends its text *before*
the audio (a WebSocket service without word timestamps) still gets marks at clause boundaries:
such *announced* texts are placed on the audio that follows at their estimated length
(characters × the speaking rate learned from delimited segments), the last one at the end of the
turn. TTS audio (any rate) is resampled to the line's rate and encoded; a partial frame waits for
the next chunk. Each closed segment is recorded in the
:class:`~voiceagent.transports.twilio.ledger.PlaybackLedger`. Every item carries the
*generation* it was queued in: a barge-in bumps it, so nothing queued before it is sent.

The items sent in the last ``lead_ms`` (what Twilio may still hold) are kept in a small ring, the
same item objects: a *soft clear* (the agent paused at the caller's first sound) puts the unplayed
ones back at the head of the queue (:meth:`OutboundQueue.take_back`), so a resume goes on where
the caller stopped hearing.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from pipecat.frames.frames import OutputAudioRawFrame

from voiceagent.clock import TimerHandle
from voiceagent.transports.twilio.codec import StreamResampler
from voiceagent.transports.twilio.ledger import FRAME_S, PlaybackLedger
from voiceagent.transports.twilio.line_format import MULAW_8K, LineFormat

MEDIA, MARK, TURN_END = 0, 1, 2
"""Kinds of outbound items."""
DEFAULT_S_PER_CHAR = 0.065
"""Speaking rate assumed for announced text until delimited segments teach a better one."""


@dataclass(slots=True, eq=False)
class OutTurn:
    """One agent turn on its way out. Positions are line samples into the turn."""

    turn_id: int
    expected: float = 0.0  # output position implied by the TTS audio received so far
    queued: int = 0  # samples of whole frames queued
    boundaries: list[int] = field(default_factory=list)  # where each closed segment ends
    pending: deque[tuple[int, str, int]] = field(default_factory=deque)  # marks not yet queued
    tag_index: int = 0  # segment of the next frame
    sent_any: bool = False
    all_sent: bool = False
    finished: bool = False
    fallback: TimerHandle | None = None
    announced: deque[str] = field(default_factory=deque)  # text that came before its audio
    in_context: bool = True


OutItem = tuple[int, int, OutTurn, bytes | str | None, int]
"""``(kind, generation, turn, payload, segment index)``; payload: line audio frame or mark name."""


class OutboundQueue:
    """Agent turns cut into paced-send items: media frames, per-segment marks, turn ends.

    Attributes:
        items: The items not yet taken by the sender, oldest first.
        generation: Bumped by :meth:`reset` (a barge-in); older items must not be sent.
        current: The turn TTS audio is being added to, if any.
        turns: Turns not yet finished (being built or playing), by id.
    """

    def __init__(
        self,
        ledger: PlaybackLedger,
        wake: asyncio.Event,
        line_format: LineFormat = MULAW_8K,
        *,
        lead_s: float = 0.2,
    ) -> None:
        """Create an empty queue.

        Args:
            ledger: Where each turn and closed segment is recorded.
            wake: Set whenever items were queued (the sender waits on it).
            line_format: The audio format of the stream's media frames.
            lead_s: The most audio Twilio holds unplayed (what the ring of sent items covers).
        """
        self.ledger = ledger
        self.line_format = line_format
        self.items: deque[OutItem] = deque()
        self.sent: deque[OutItem] = deque()
        """Media and mark items sent within the last ``lead_s`` of audio, oldest first."""
        self._sent_media = 0
        self._sent_capacity = math.ceil(lead_s / FRAME_S - 1e-6) + 1
        self.generation = 0
        self.current: OutTurn | None = None
        self.turns: dict[int, OutTurn] = {}
        self._wake = wake
        self._remainder = b""
        self._resamplers: dict[int, StreamResampler] = {}
        self._turn_counter = 0
        self.s_per_char = DEFAULT_S_PER_CHAR
        """Speaking rate of the TTS (an EMA over delimited segments)."""

    def open_turn(self) -> OutTurn:
        """Start a new agent turn; TTS audio is added to it from now on."""
        self._turn_counter += 1
        turn = OutTurn(self._turn_counter)
        self.current = turn
        self.turns[turn.turn_id] = turn
        self.ledger.start_turn(turn.turn_id)
        return turn

    def start_turn(self, *, flush: bool) -> None:
        """TTS started: end the turn being built if it has audio, and open a new one."""
        if self.current is None or self.current.expected:
            self.end_turn(flush=flush)
            self.open_turn()

    def add_audio(self, frame: OutputAudioRawFrame) -> None:
        """Queue the whole 20 ms frames of one TTS audio chunk (first channel, any rate)."""
        if not frame.audio:
            return
        turn = self.current or self.open_turn()
        pcm = frame.audio
        if len(pcm) & 1:
            pcm = pcm[:-1]
        if frame.num_channels > 1:
            samples = np.frombuffer(pcm, dtype=np.int16)
            pcm = samples[: len(samples) // frame.num_channels * frame.num_channels][
                :: frame.num_channels
            ].tobytes()
        line = self.line_format
        turn.expected += len(pcm) / 2 * line.rate / frame.sample_rate
        resampler = self._resamplers.get(frame.sample_rate)
        if resampler is None:
            resampler = StreamResampler(frame.sample_rate, line.rate)
            self._resamplers[frame.sample_rate] = resampler
        pcm_line = resampler.resample(pcm)
        if pcm_line:
            self._enqueue(turn, line.from_pcm16(pcm_line))

    def add_segment_text(self, text: str, *, in_context: bool = True) -> None:
        """A ``TTSTextFrame``: the audio queued so far for the current turn is one segment.

        The segment's audio is complete, so what the resampler and the partial frame hold back
        goes out now (padded to a whole frame): the caller hears the end of "Sure," and its
        mark comes back even if the next segment's audio is late. Text with no new audio
        before it is *announced*: its audio is still to come.
        """
        if not text:
            return
        turn = self.current or self.open_turn()
        if not in_context:
            turn.in_context = False
        start = turn.boundaries[-1] if turn.boundaries else 0
        if round(turn.expected) <= start:
            turn.announced.append(text)
            return
        if turn.announced:  # the TTS delimits after all: the audio so far is theirs too
            text = " ".join([*turn.announced, text])
            turn.announced.clear()
        else:
            chars = len(text)
            if chars >= 8:
                seconds = (round(turn.expected) - start) / self.line_format.rate
                self.s_per_char += 0.3 * (seconds / chars - self.s_per_char)
        self._close_segment(turn, text)
        self._flush_held(turn)

    def end_turn(self, *, flush: bool) -> None:
        """TTS finished the current turn: flush filters and the partial frame, then the final mark.

        Args:
            flush: Whether held-back audio is still queued (False once the socket is gone).
        """
        turn, self.current = self.current, None
        if turn is None:
            return
        if flush:
            self._flush_held(turn)
        if turn.announced:
            text = " ".join(turn.announced)
            turn.announced.clear()
            self._close_segment(turn, text, end=turn.queued)
        self._queue_due_marks(turn, force=True)
        # Frames after the last mark (audio without text, or no text at all) get their own.
        last = turn.boundaries[-1] if turn.boundaries else 0
        frame = self.line_format.frame_samples
        marked = -(-last // frame) * frame
        if turn.queued > marked:
            self._close_segment(turn, "", end=turn.queued)
        self.ledger.complete_turn(turn.turn_id)
        if turn.queued == 0:
            self.turns.pop(turn.turn_id, None)
            self.ledger.close_turn(turn.turn_id, interrupted=False)
            return
        self.items.append((TURN_END, self.generation, turn, None, 0))
        self._wake.set()

    def _flush_held(self, turn: OutTurn) -> None:
        """Queue the audio held in the resamplers and the partial frame (silence-padded)."""
        line = self.line_format
        for resampler in self._resamplers.values():
            tail = resampler.flush()
            if tail:
                self._enqueue(turn, line.from_pcm16(tail))
        if self._remainder:
            missing = line.frame_samples - len(self._remainder) // line.sample_width
            turn.expected += missing  # later segment boundaries stay on the queued audio
            self._enqueue(turn, line.silence(missing))

    def reset(self) -> None:
        """Barge-in: drop every queued item and held-back audio; bump the generation."""
        self.generation += 1
        self.items.clear()
        self.sent.clear()
        self._sent_media = 0
        self._remainder = b""
        for resampler in self._resamplers.values():
            resampler.reset()

    def note_sent(self, item: OutItem) -> None:
        """The sender sent ``item`` (media or a mark): keep it while Twilio may hold it.

        Per frame: the item object itself is kept (no copy); the ring drops its oldest frame
        (and the marks before it) once it holds more than ``lead_s`` of audio.
        """
        sent = self.sent
        sent.append(item)
        if item[0] == MEDIA:
            self._sent_media += 1
            if self._sent_media > self._sent_capacity:
                while sent.popleft()[0] != MEDIA:
                    pass
                self._sent_media -= 1

    def take_back(self, frames: int, tag: str) -> int:
        """A soft clear: Twilio dropped the last ``frames`` frames sent; queue them again first.

        The marks sent after those frames go back too, renamed ``<name>r<tag>`` in the ledger
        (the clear echoes the old names at once; that proves nothing). Frames after a mark
        whose echo already came are not taken back (the caller heard up to that mark). A turn
        whose end had been sent gets it again after its last item. Returns the frames taken
        back (fewer than ``frames`` if the ring holds fewer).
        """
        sent, ledger, gen = self.sent, self.ledger, self.generation
        back: list[OutItem] = []
        count = 0
        while sent and count < frames:
            item = sent.pop()
            kind, item_gen, turn, payload, _ = item
            if item_gen != gen or turn.finished:
                break
            if kind == MARK and not ledger.is_outstanding(str(payload)):
                break  # echoed: everything before it played
            count += kind == MEDIA
            back.append(item)
        sent.clear()
        self._sent_media = 0
        if not back:
            return 0
        back.reverse()
        queued: list[OutItem] = []
        for i, item in enumerate(back):
            kind, item_gen, turn, payload, index = item
            if kind == MARK:
                old = str(payload)
                name = f"{old.partition('r')[0]}r{tag}"
                ledger.resend_mark(old, name)
                item = (MARK, item_gen, turn, name, index)
            else:
                ledger.take_back(turn.turn_id, FRAME_S)
            queued.append(item)
            if turn.all_sent and (i + 1 == len(back) or back[i + 1][2] is not turn):
                turn.all_sent = False  # its end goes out again after its last item
                if turn.fallback is not None:
                    turn.fallback.cancel()
                    turn.fallback = None
                queued.append((TURN_END, item_gen, turn, None, 0))
        self.items.extendleft(reversed(queued))
        self._wake.set()
        return count

    def media_count(self) -> int:
        """How many media frames are queued."""
        return sum(1 for item in self.items if item[0] == MEDIA)

    # -- internals ----------------------------------------------------------------------------

    def _enqueue(self, turn: OutTurn, audio: bytes) -> None:
        buf = self._remainder + audio if self._remainder else audio
        size, samples = self.line_format.frame_bytes, self.line_format.frame_samples
        whole = len(buf) - len(buf) % size
        gen, append, boundaries = self.generation, self.items.append, turn.boundaries
        for start in range(0, whole, size):
            while turn.tag_index < len(boundaries) and boundaries[turn.tag_index] <= turn.queued:
                turn.tag_index += 1
            append((MEDIA, gen, turn, buf[start : start + size], turn.tag_index))
            turn.queued += samples
            if len(turn.announced) > 1:
                self._place_announced(turn)
            if turn.pending and turn.pending[0][0] <= turn.queued:
                self._queue_due_marks(turn)
        self._remainder = buf[whole:]
        if whole:
            self._wake.set()

    def _place_announced(self, turn: OutTurn) -> None:
        """Close the first announced text once its estimated audio has been queued."""
        start = turn.boundaries[-1] if turn.boundaries else 0
        text = turn.announced[0]
        length = round(len(text) * self.s_per_char * self.line_format.rate)
        if turn.queued - start >= length:
            turn.announced.popleft()
            self._close_segment(turn, text, end=turn.queued)

    def _queue_due_marks(self, turn: OutTurn, *, force: bool = False) -> None:
        """Queue each pending mark once the frame holding its segment's last byte is queued.

        The resampler holds back a few ms of audio, so a segment's text can arrive before
        all of its audio came out; the mark waits for it (at most 20 ms late, never early).
        """
        pending = turn.pending
        while pending and (force or pending[0][0] <= turn.queued):
            _, mark, index = pending.popleft()
            self.items.append((MARK, self.generation, turn, mark, index))
        self._wake.set()

    def _close_segment(self, turn: OutTurn, text: str, end: int | None = None) -> None:
        boundary = round(turn.expected) if end is None else end
        start = turn.boundaries[-1] if turn.boundaries else 0
        if boundary <= start:
            self.ledger.add_text(turn.turn_id, text)
            return
        index = len(turn.boundaries)
        mark = f"a{turn.turn_id}.{index + 1}"
        seconds = (boundary - start) / self.line_format.rate
        self.ledger.add_segment(turn.turn_id, mark, text, seconds, in_context=turn.in_context)
        turn.boundaries.append(boundary)
        turn.pending.append((boundary, mark, index))
        self._queue_due_marks(turn)
