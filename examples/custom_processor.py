"""A processor of your own inserted into the call chain: say abbreviations out loud.

    voiceagent serve --bot examples/custom_processor.py:factory

LLMs write "Dr. Lee", "Main St." and "Mon–Fri"; a TTS reads them badly. ``SpokenForms`` sits
right after the ``aggregator`` stage (``extra={"aggregator": [...]}``), where the reply is
already cut into the chunks the TTS will speak, and rewrites each chunk. The TTS's
``TTSTextFrame`` then carries the spoken words, so the conversation (what the caller heard)
holds "Doctor Lee", not "Dr. Lee". The chain's contracts still hold: the processor is your own
kind, the builder only checks the stages around it.

Frame contract: consumes downstream ``AggregatedTextFrame`` (the chunks to be spoken) and
pushes it on with the rewritten text; forwards every other frame untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pipecat.frames.frames import AggregatedTextFrame, Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent import AgentResources, Settings, build_call_processors

SPOKEN_FORMS = {
    "Dr.": "Doctor",
    "St.": "Street",
    "Ave.": "Avenue",
    "Mon–Fri": "Monday to Friday",
    "&": "and",
}


class SpokenForms(FrameProcessor):
    """Rewrites written forms in the chunks the TTS will speak (see the module docstring)."""

    def __init__(self, forms: Mapping[str, str] = SPOKEN_FORMS, **kwargs: Any) -> None:
        """Create the processor with ``forms``: written form → what to say instead."""
        super().__init__(**kwargs)
        self._forms = dict(forms)
        alternatives = "|".join(re.escape(k) for k in sorted(forms, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")

    def rewrite(self, text: str) -> str:
        """``text`` with every written form replaced by its spoken form."""
        return self._pattern.sub(lambda match: self._forms[match.group(0)], text)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Rewrite a chunk on its way to the TTS; forward everything."""
        await super().process_frame(frame, direction)
        if isinstance(frame, AggregatedTextFrame) and direction is FrameDirection.DOWNSTREAM:
            frame.text = self.rewrite(frame.text)
        await self.push_frame(frame, direction)


class SpokenFormsBot:
    """The library's chain with ``SpokenForms`` between the aggregator and the TTS."""

    def __init__(self, settings: Settings) -> None:
        """Keep the settings (nothing loads yet)."""
        self.resources = AgentResources(settings)

    async def start(self, progress: Callable[[str], None] | None = None) -> None:
        """Load models or start the local LLM server, as the settings need."""
        await self.resources.start(progress)

    async def stop(self) -> None:
        """Stop what ``start`` started."""
        await self.resources.stop()

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        """One call's processors, with the rewriter inserted after the aggregator."""
        processors, _ = build_call_processors(
            settings, self.resources, extra={"aggregator": [SpokenForms()]}
        )
        return processors


def factory(settings: Settings) -> SpokenFormsBot:
    """``voiceagent serve --bot examples/custom_processor.py:factory``."""
    return SpokenFormsBot(settings)
