"""Which of the marks a server sent Twilio would echo by now (its audio has played)."""

from __future__ import annotations

from typing import Any


def due_marks(sent: list[tuple[float, dict[str, Any]]], echoed: set[str], now: float) -> list[str]:
    """Names of marks in ``sent`` (``(time, message)``) whose audio played by ``now``, not echoed.

    Twilio plays media back to back at 20 ms a frame; a ``clear`` drops what was queued.
    """
    play_end, due = float("-inf"), []
    for at, message in sent:
        if message["event"] == "clear":
            play_end = at
        elif message["event"] == "media":
            play_end = max(play_end, at) + 0.02
        elif message["event"] == "mark":
            name = message["mark"]["name"]
            if name not in echoed and play_end <= now + 1e-9:
                due.append(name)
    return due
