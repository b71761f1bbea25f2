"""``TwilioMarks``: tells a pipecat transport's Twilio serializer what each agent segment is.

Pipecat's output transports hand their serializer audio, ``InterruptionFrame`` and transport
messages, but not the TTS frames that say which text the audio was; and they hold the TTS's
frames in a queue, sending each at its audio's real time — so a barge-in drops the text of a
segment whose audio was only partly sent. Placed right before the transport's output,
``TwilioMarks`` follows the TTS frames and tells
:class:`~voiceagent.transports.twilio.frame_serializer.TwilioFrameSerializer` two things:

- at once (:class:`SegmentPlanFrame`, an urgent transport message): each agent turn's segments —
  the text of each ``TTSTextFrame`` and how long the audio before it lasts — as the TTS makes
  them, so the serializer can tell at any moment which words the audio it sent was;
- in order with the audio (:class:`SegmentMarkFrame`, a transport message the output sends after
  the audio before it): where a turn starts and each segment ends, answered with a Twilio
  ``mark`` whose echo proves that audio was played (after a ``flush`` that sends what a
  resampler still holds of the segment).

After an ``InterruptionFrame`` (the serializer sends ``clear``) it adds an urgent
:class:`SyncMarkFrame`: Twilio echoes it at once, and the echo carries the cut turn's
``AgentHeardFrame`` into the pipeline. Text a TTS sends before its audio is joined to the audio
that follows.

Frame contract: consumes nothing; forwards every frame; emits the frames above (downstream).
Requires: a TTS upstream that pushes ``TTSStartedFrame`` / ``TTSStoppedFrame`` around a reply
and each ``TTSTextFrame`` after its audio (``voiceagent.VoiceTTSService`` does), and the
transport's output (with ``TwilioFrameSerializer``) right after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


@dataclass
class SegmentPlanFrame(OutputTransportMessageUrgentFrame):
    """An agent turn's shape, as the TTS makes it (sent at once, ahead of the audio).

    ``edge``: ``turn_start``; ``segment`` (``mark`` follows ``seconds`` of audio that said
    ``text``; ``in_context`` False for speech outside the conversation); ``turn_end``.
    """

    message: Any = field(default_factory=dict)
    edge: Literal["turn_start", "segment", "turn_end"] = "segment"
    turn_id: int = 0
    mark: str = ""
    text: str = ""
    seconds: float = 0.0
    in_context: bool = True


@dataclass
class SegmentMarkFrame(OutputTransportMessageFrame):
    """Where the audio being sent is, in send order.

    ``edge``: ``turn_start`` (this turn's audio follows), ``flush`` (send what the resampler
    holds) or ``mark`` (send ``mark``: the audio before it ends a segment).
    """

    message: Any = field(default_factory=dict)
    edge: Literal["turn_start", "flush", "mark"] = "mark"
    turn_id: int = 0
    mark: str = ""


@dataclass
class SyncMarkFrame(OutputTransportMessageUrgentFrame):
    """Sent right after a ``clear``: its immediate echo carries the cut turn's heard report."""

    message: Any = field(default_factory=dict)


class TwilioMarks(FrameProcessor):
    """Segments and marks for ``TwilioFrameSerializer``; place it right before the output."""

    def __init__(self, **kwargs: Any) -> None:
        """Create the processor (one per call)."""
        super().__init__(**kwargs)
        self._turn = 0
        self._open = False
        self._segments = 0
        self._seconds = 0.0  # audio since the last segment boundary
        self._announced: list[str] = []  # text that came before its audio

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Forward the frame; describe the TTS frames and interruptions to the serializer."""
        await super().process_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, OutputAudioRawFrame):
            if not self._open:
                await self._start_turn()
            channels = max(1, frame.num_channels)
            self._seconds += len(frame.audio) / 2 / channels / frame.sample_rate
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSStartedFrame):
            if not self._open or self._seconds > 0.0 or self._segments:
                await self._end_turn()
                await self._start_turn()
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSTextFrame):
            await self.push_frame(frame, direction)
            text = " ".join(frame.text.split())
            if not text:
                return
            if not self._open:
                await self._start_turn()
            if self._seconds <= 0.0:
                self._announced.append(text)
                return
            in_context = frame.append_to_context is not False
            await self._segment(" ".join([*self._announced, text]), in_context)
            self._announced.clear()
        elif isinstance(frame, TTSStoppedFrame):
            await self._end_turn()
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            self._open = False
            self._seconds = 0.0
            self._announced.clear()
            await self.push_frame(frame, direction)
            await self.push_frame(SyncMarkFrame())
        else:
            await self.push_frame(frame, direction)

    async def _start_turn(self) -> None:
        self._turn += 1
        self._open = True
        self._segments = 0
        self._seconds = 0.0
        self._announced.clear()
        await self.push_frame(SegmentPlanFrame(edge="turn_start", turn_id=self._turn))
        await self.push_frame(SegmentMarkFrame(edge="turn_start", turn_id=self._turn))

    async def _segment(self, text: str, in_context: bool = True) -> None:
        self._segments += 1
        mark = f"a{self._turn}.{self._segments}"
        plan = SegmentPlanFrame(
            turn_id=self._turn, mark=mark, text=text, seconds=self._seconds, in_context=in_context
        )
        self._seconds = 0.0
        await self.push_frame(plan)
        await self.push_frame(SegmentMarkFrame(edge="flush", turn_id=self._turn))
        await self.push_frame(SegmentMarkFrame(turn_id=self._turn, mark=mark))

    async def _end_turn(self) -> None:
        """The turn's last segment (possibly empty: its mark proves the end was heard)."""
        if not self._open:
            return
        await self._segment(" ".join(self._announced))
        self._announced.clear()
        self._open = False
        await self.push_frame(SegmentPlanFrame(edge="turn_end", turn_id=self._turn))
