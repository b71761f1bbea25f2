"""A bot file for ``voiceagent eval --bot tests/eval/cheap_bot.py:make_bot`` (the cheap agent).

Its STT hears ``CHEAP_BOT_HEARD`` (``|``-separated, one per caller utterance, repeated).
"""

from __future__ import annotations

import os

from tests.eval.eval_fakes import CheapAgent

STARTED: list[str] = []


class CheapBot(CheapAgent):
    """The cheap agent with the optional lifecycle of a bot."""

    async def start(self, progress=None) -> None:
        STARTED.append("start")
        if progress is not None:
            progress("cheap bot ready")

    async def stop(self) -> None:
        STARTED.append("stop")


def make_bot(settings) -> CheapBot:
    heard = os.environ.get("CHEAP_BOT_HEARD", "").split("|")
    return CheapBot(heard * 20)
