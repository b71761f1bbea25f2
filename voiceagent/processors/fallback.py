"""FallbackSwitcher: one stage served by a list of providers, moving down it when one fails.

Built on pipecat's ``ServiceSwitcher`` (each provider in its own filtered branch, one active
at a time). pipecat's failover strategy switches only when a service gives up for good and
leaves the work in flight to be lost; a phone call needs more. Each branch here is wrapped in
two taps that show this switcher every frame entering the provider and every frame it
pushes, so a stage subclass (``voiceagent.processors.fallback_stages``) can notice a failure
that is not an error (a silent socket, a late first token), and hand the new provider the
work the failed one had not finished (the caller's utterance, the generation, the chunk).

On a failure the switcher moves to the next usable provider *for the rest of the call*,
logs it once (warning), counts it in ``stats`` and tells the call's record
(``ProviderSwitchedFrame`` downstream); frames the failed provider pushes later
are dropped, and its errors stop here. With no provider left the error travels upstream as
usual. Frames a subclass re-sends that already left the switcher are not pushed twice
(``ParallelPipeline`` passes each frame id once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.frames.frames import EndFrame, ErrorFrame, Frame, StopFrame, SystemFrame
from pipecat.pipeline.service_switcher import ServiceSwitcher, ServiceSwitcherStrategy
from pipecat.processors.filters.function_filter import FunctionFilter
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock, Deadline
from voiceagent.frames import ProviderSwitchedFrame


@dataclass
class FallbackStats:
    """What one call's switcher did."""

    switches: int = 0
    reasons: list[str] = field(default_factory=list)


class _FallbackStrategy(ServiceSwitcherStrategy):
    """Every error of the active provider is offered to the switcher."""

    switcher: FallbackSwitcher | None = None

    async def handle_error(self, error: ErrorFrame) -> FrameProcessor | None:
        """The provider still serving after the switcher dealt with ``error`` (None: not dealt)."""
        if self.switcher is None:
            return None
        return await self.switcher.on_provider_error(error)


class _Tap(FrameProcessor):
    """Shows the switcher the frames crossing one side of one provider."""

    def __init__(self, switcher: FallbackSwitcher, service: FrameProcessor, side: str) -> None:
        super().__init__(name=f"{service.name}::{side}-tap", enable_direct_mode=True)
        self._switcher = switcher
        self._service = service
        self._out = side == "out"

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        switcher = self._switcher
        if self._out and direction == FrameDirection.DOWNSTREAM:
            frames = await switcher._output(self._service, frame)
        elif not self._out and direction == FrameDirection.DOWNSTREAM:
            if switcher._handed and frame.id in switcher._handed:
                switcher._handed.discard(frame.id)  # already handed over, in order
                return
            if self._service is switcher.active:
                switcher.on_input(self._service, frame)
            frames = [frame]
        else:
            frames = [frame]
        for out in frames:
            await self.push_frame(out, direction)


class FallbackSwitcher(ServiceSwitcher):
    """Providers of one stage in the order they are tried (see the module docstring)."""

    def __init__(
        self, services: list[FrameProcessor], *, stage: str, clock: Clock = DEFAULT_CLOCK
    ) -> None:
        """Create the switcher.

        Args:
            services: The providers, primary first (at least one).
            stage: The stage's name for logs ("stt", "llm", "tts").
            clock: Time source for the subclasses' timeouts.
        """
        self._stage = stage
        super().__init__(services, strategy_type=_FallbackStrategy)
        self.strategy.switcher = self
        self._clock = clock
        self.stats = FallbackStats()
        self._tasks: set[asyncio.Task] = set()
        self._swallowed: set[int] = set()
        self._handed: set[int] = set()
        self._deadlines: list[Deadline] = []

    @property
    def active(self) -> FrameProcessor:
        """The provider serving the stage now."""
        return self.strategy.active_service

    def _make_pipeline_definitions(
        self, services: list[FrameProcessor], strategy: ServiceSwitcherStrategy
    ) -> list[Any]:
        """Each branch: filter → in-tap → provider → out-tap → filter."""
        branches = []
        for service in services:

            async def active(_: Frame, service: FrameProcessor = service) -> bool:
                return service is strategy.active_service

            branches.append(
                [
                    FunctionFilter(
                        filter=active,
                        direction=FrameDirection.DOWNSTREAM,
                        filter_system_frames=True,
                        enable_direct_mode=True,
                    ),
                    _Tap(self, service, "in"),
                    service,
                    _Tap(self, service, "out"),
                    FunctionFilter(
                        filter=active,
                        direction=FrameDirection.UPSTREAM,
                        filter_system_frames=True,
                        enable_direct_mode=True,
                    ),
                ]
            )
        return branches

    async def fail_over(self, reason: str) -> FrameProcessor | None:
        """Move to the next usable provider for the rest of the call; None if there is none.

        The subclass's ``hand_over(failed, new)`` runs right after the switch.
        """
        failed = self.active
        index = self.services.index(failed)
        for candidate in self.services[index + 1 :]:
            if candidate.is_usable and await self.strategy._set_active_if_available(candidate):
                self.stats.switches += 1
                self.stats.reasons.append(reason)
                logger.warning(
                    f"{self._stage} fallback: {failed.name} failed ({reason}); "
                    f"{candidate.name} serves the rest of the call"
                )
                await self._announce(failed, candidate.name, reason)
                await self.hand_over(failed, candidate)
                return candidate
        logger.error(f"{self._stage} fallback: {failed.name} failed ({reason}); no provider left")
        await self._announce(failed, "", reason)
        return None

    async def _announce(self, failed: FrameProcessor, serving: str, reason: str) -> None:
        """Tell the stages after this one (and the call's record) about the switch."""
        frame = ProviderSwitchedFrame(
            stage=self._stage, failed=failed.name, serving=serving, reason=reason[:300]
        )
        await self.push_frame(frame)

    async def on_provider_error(self, error: ErrorFrame) -> FrameProcessor | None:
        """The active provider pushed ``error``: by default, fail over."""
        return await self.fail_over(error.error)

    def on_input(self, service: FrameProcessor, frame: Frame) -> None:
        """``frame`` is entering provider ``service`` (downstream). Per frame: keep it cheap."""

    async def on_output(self, service: FrameProcessor, frame: Frame) -> list[Frame]:
        """The active provider pushed ``frame`` downstream: the frames to pass on instead."""
        return [frame]

    async def hand_over(self, failed: FrameProcessor, new: FrameProcessor) -> None:
        """Give ``new`` the work ``failed`` had not finished (subclasses)."""

    async def hand(self, service: FrameProcessor, frames: list[Frame]) -> None:
        """Queue ``frames`` into ``service`` in order (a hand-over; ``on_input`` sees each).

        A frame that also reaches the new provider on its own (it was on its way when the
        switch happened) is not given to it twice.
        """
        self._handed = {frame.id for frame in frames}
        for frame in frames:
            if service is self.active:
                self.on_input(service, frame)
            await service.queue_frame(frame)

    async def send_quietly(self, service: FrameProcessor, frame: Frame) -> None:
        """Queue ``frame`` into ``service``; the frame itself is not passed on when it comes out."""
        self._swallowed.add(frame.id)
        await service.queue_frame(frame)

    async def _output(self, service: FrameProcessor, frame: Frame) -> list[Frame]:
        if frame.id in self._swallowed:
            self._swallowed.discard(frame.id)
            return []
        if service is not self.active and not isinstance(frame, (SystemFrame, EndFrame, StopFrame)):
            return []  # a failed provider's late output
        return await self.on_output(service, frame)

    def new_deadline(self, callback: Callable[[], None]) -> Deadline:
        """A wake-up on the switcher's clock, cancelled at cleanup."""
        deadline = Deadline(self._clock, callback)
        self._deadlines.append(deadline)
        return deadline

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` as a task owned by this switcher (cancelled at cleanup)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cleanup(self) -> None:
        """Cancel pending work."""
        for deadline in self._deadlines:
            deadline.cancel()
        for task in list(self._tasks):
            task.cancel()
        await super().cleanup()
