"""A bot of your own: a bike shop's phone line with its own prompt, greeting and one tool.

    voiceagent serve --bot examples/custom_bot.py:factory

The server calls ``factory(settings)`` once, ``await bot.start()`` before taking calls, then
``await bot(call, settings)`` for each call: the processors between the call's Twilio input
and output. Everything else (turn-taking, barge-in, the heard ledger, fallbacks, recording)
is the library's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipecat.processors.frame_processor import FrameProcessor
from pydantic import BaseModel, Field

from voiceagent import AgentResources, AgentTool, Settings, ToolRegistry, build_call_processors

PROMPT = (
    "You answer the phone at Harbor Bikes, a bicycle repair shop. Reply in one or two short "
    "spoken sentences, plain words only. When a caller asks about a repair, ask for the ticket "
    "number if you do not have it, then look it up with repair_status and tell them what it says."
)
GREETING = "Harbor Bikes, this is the repair desk. How can I help?"

REPAIRS = {
    "1042": "ready for pick-up, the bill is 85 dollars",
    "1043": "waiting for a brake part, ready on Thursday",
}


class RepairTicket(BaseModel):
    """The arguments of ``repair_status``: its JSON schema is what the LLM is offered."""

    ticket: str = Field(description="the ticket number on the customer's receipt")


async def repair_status(args: RepairTicket) -> dict[str, str]:
    """Look a repair up by its ticket (a read-only tool: it may run for a speculative reply)."""
    ticket = "".join(ch for ch in args.ticket if ch.isdigit())
    return {"ticket": ticket, "status": REPAIRS.get(ticket, "no repair with that ticket")}


REPAIR_STATUS = AgentTool(
    "repair_status",
    "The status of a bike repair, by the ticket number on the customer's receipt.",
    RepairTicket,
    repair_status,
    side_effects=False,
)


class BikeShopBot:
    """The shop's agent: shared resources, and one call chain per call with the shop's tool."""

    def __init__(self, settings: Settings) -> None:
        """Keep the settings with the shop's prompt and greeting (nothing loads yet)."""
        agent = settings.agent.model_copy(update={"system_prompt": PROMPT, "greeting": GREETING})
        self.settings = settings.model_copy(update={"agent": agent})
        self.resources = AgentResources(self.settings)

    async def start(self, progress: Callable[[str], None] | None = None) -> None:
        """Load models or start the local LLM server (nothing to do on cloud providers)."""
        await self.resources.start(progress)

    async def stop(self) -> None:
        """Stop what ``start`` started."""
        await self.resources.stop()

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        """One call's processors: the library's chain, with the shop's tool on its LLM."""
        agent = settings.agent.model_copy(update={"system_prompt": PROMPT, "greeting": GREETING})
        processors, parts = build_call_processors(
            settings.model_copy(update={"agent": agent}), self.resources
        )
        llm = parts.processors["llm"]
        parts.conversation.tools = llm.register_tools(ToolRegistry([REPAIR_STATUS]))
        return processors


def factory(settings: Settings) -> BikeShopBot:
    """``voiceagent serve --bot examples/custom_bot.py:factory``."""
    return BikeShopBot(settings)
