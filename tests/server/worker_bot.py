"""A bot for the multi-worker tests: no models, the echo agent of the server harness."""

from __future__ import annotations

from typing import Any

from pipecat.processors.frame_processor import FrameProcessor

from tests.server.server_harness import EchoAgent
from voiceagent.settings import Settings


class EchoBot:
    """``voiceagent serve --bot tests.server.worker_bot:EchoBot``: speaks the caller back."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def start(self, progress: Any = None) -> None:
        """Nothing to load."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        return [EchoAgent(call, set(), None)]
