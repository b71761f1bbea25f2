"""Which of the marks a server sent Twilio would echo by now (its audio has played)."""

from __future__ import annotations

from typing import Any


def due_marks(sent: list[tuple[float, dict[str, Any]]], echoed: set[str], now: float) -> list[str]:
    """Names of marks in ``sent`` (``(time, message)``) whose audio played by ``now``, not echoed.

    Twilio plays media back to back at 20 ms a frame; a ``clear`` drops what was queued and
    echoes every mark still waiting at once.
    """
    play_end = float("-inf")
    waiting: list[tuple[str, float]] = []  # (mark, when its audio has played)
    for at, message in sent:
        if message["event"] == "clear":
            waiting = [(name, min(due, at)) for name, due in waiting]
            play_end = at
        elif message["event"] == "media":
            play_end = max(play_end, at) + 0.02
        elif message["event"] == "mark":
            waiting.append((message["mark"]["name"], play_end))
    return [name for name, due in waiting if name not in echoed and due <= now + 1e-9]
