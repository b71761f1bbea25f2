"""The bundled bot: a dental-office receptionist on the offline default or cloud providers.

``ReceptionistBot`` owns the shared resources and is the server's pipeline factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.frames import AgentHeardFrame, UserTurnCommittedFrame
from voiceagent.pipelines.builder import CallParts, build_call_processors
from voiceagent.pipelines.resources import AgentResources
from voiceagent.processors.stability_router import StabilityCommitRouter
from voiceagent.processors.turn_totals import TurnTotals
from voiceagent.settings import Settings

TranscriptCallback = Callable[[str, str, dict[str, Any]], None]


class TranscriptTap(FrameProcessor):
    """Reports committed caller turns and heard agent turns to a callback (live transcripts)."""

    def __init__(self, call: Any, callback: TranscriptCallback, **kwargs) -> None:
        super().__init__(**kwargs)
        self._call = call
        self._callback = callback

    @property
    def _call_sid(self) -> str:
        return getattr(self._call, "call_sid", None) or "?"

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Forward everything; report the turn frames."""
        await super().process_frame(frame, direction)
        if isinstance(frame, UserTurnCommittedFrame):
            self._callback(
                "caller",
                frame.text,
                {
                    "call_sid": self._call_sid,
                    "turn": frame.turn_id,
                    "speculative_hit": frame.speculative_hit,
                    "reason": frame.reason,
                },
            )
        elif isinstance(frame, AgentHeardFrame) and frame.full_text:
            self._callback(
                "agent",
                frame.text,
                {
                    "call_sid": self._call_sid,
                    "turn": frame.turn_id,
                    "interrupted": frame.interrupted,
                    "full_text": frame.full_text,
                },
            )
        await self.push_frame(frame, direction)


class ReceptionistBot:
    """Shared resources + one pipeline per call."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_transcript: TranscriptCallback | None = None,
        on_call_built: Callable[[Any, CallParts], None] | None = None,
    ) -> None:
        self.settings = settings
        self.resources = AgentResources(settings)
        self.turn_totals = TurnTotals()
        self._on_transcript = on_transcript
        self.on_call_built = on_call_built
        """Told each call's ``CallParts`` (context, processors by stage) once built."""

    async def start(self, progress: Callable[[str], None] | None = None) -> None:
        """Load models / start the local LLM server."""
        await self.resources.start(progress)

    async def stop(self) -> None:
        """Stop child processes."""
        await self.resources.stop()

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        """The server's pipeline factory: the processors between serializer and output."""
        extra = None
        if self._on_transcript is not None:
            extra = {"router": [TranscriptTap(call, self._on_transcript)]}
        processors, parts = build_call_processors(settings, self.resources, extra=extra)
        router = parts.processors.get("router")
        if isinstance(router, StabilityCommitRouter):
            self.turn_totals.track(router)
        if self.on_call_built is not None:
            self.on_call_built(call, parts)
        return processors

    def render_metrics(self) -> str:
        """Turn-taking counters over all calls, appended to the server's /metrics."""
        return self.turn_totals.render()
