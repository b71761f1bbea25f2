"""What the softphone page is told besides audio: the call's transcript and figures, as they happen.

On the browser leg only, the server sends extra JSON messages on the Media Streams socket, all
``{"event": "phone", "type": …}`` (a Twilio-faithful client ignores an event it does not know):

- ``ready``: ``callSid``, ``streamSid``, ``mediaFormat`` — the identity the page must use in
  its ``start`` (sent by the server before anything else);
- ``partial`` / ``final``: the STT's interim and final transcripts of the caller (``text``);
- ``committed``: the caller's turn was committed (``turn``, ``text``, ``reason``; ``revision``:
  a later, fuller text of a turn already committed);
- ``agent_text``: a segment of what the agent is saying (``text``), before it is heard;
- ``heard``: what the caller heard of an agent turn (``turn``, ``text``, ``full_text``,
  ``interrupted``, ``unheard``) — from the page's own mark echoes;
- ``metrics``: the turn-taking figures of a caller turn (``turn``, ``data``).

:class:`PageEvents` is a pipecat observer added to the browser call's pipeline worker: it sees
each frame the first time it is pushed, wherever in the pipeline that is, so it depends on the
frames (``voiceagent.frames`` and pipecat's) and not on which stage makes them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    TTSTextFrame,
)
from pipecat.observers.base_observer import FramePushed

from voiceagent.frames import AgentHeardFrame, TurnMetricsFrame, UserTurnCommittedFrame
from voiceagent.server.call_worker import WatchingObserver

PAGE_EVENT = "phone"
_WATCHED = (
    InterimTranscriptionFrame,
    TranscriptionFrame,
    UserTurnCommittedFrame,
    TTSTextFrame,
    AgentHeardFrame,
    TurnMetricsFrame,
)


def page_message(kind: str, **fields: Any) -> str:
    """One page event as JSON text."""
    return json.dumps({"event": PAGE_EVENT, "type": kind, **fields}, default=str)


def page_event(frame: Frame) -> str | None:
    """The page event a frame makes, or None (most frames make none)."""
    if not isinstance(frame, _WATCHED):
        return None
    if isinstance(frame, InterimTranscriptionFrame):
        return page_message("partial", text=frame.text) if frame.text else None
    if isinstance(frame, TranscriptionFrame):
        return page_message("final", text=frame.text) if frame.text else None
    if isinstance(frame, UserTurnCommittedFrame):
        return page_message(
            "committed",
            turn=frame.turn_id,
            text=frame.text,
            reason=frame.reason,
            revision=frame.revision,
        )
    if isinstance(frame, TTSTextFrame):
        return page_message("agent_text", text=frame.text) if frame.text.strip() else None
    if isinstance(frame, AgentHeardFrame):
        if not (frame.full_text or frame.text):
            return None
        return page_message(
            "heard",
            turn=frame.turn_id,
            text=frame.text,
            full_text=frame.full_text,
            interrupted=frame.interrupted,
            unheard=frame.unheard_text,
        )
    return page_message("metrics", turn=frame.turn_id, data=frame.data)


class PageEvents(WatchingObserver):
    """Sends the page an event for each transcript, turn and figure frame of its call."""

    watched = _WATCHED

    def __init__(self, send_text: Callable[[str], Awaitable[None]], label: str = "") -> None:
        """Create the observer.

        Args:
            send_text: Sends one text message on the call's socket.
            label: The call's name for the log.
        """
        super().__init__(observe_every_push=False)
        self._send_text = send_text
        self._label = label
        self._closed = False
        self.sent = 0

    async def on_push_frame(self, data: FramePushed) -> None:
        """Turn a watched frame into a page event and send it (once the socket is gone: drop)."""
        if self._closed:
            return
        message = page_event(data.frame)
        if message is None:
            return
        try:
            await self._send_text(message)
            self.sent += 1
        except (ConnectionError, RuntimeError) as e:
            self._closed = True
            logger.debug(f"call {self._label}: page events stop, the socket is gone ({e!r})")
