"""How a call ended, in one vocabulary for every call record.

Three witnesses tell it, and the most specific wins:

1. the agent's own decision, declared before it acts (``CallEndReasonFrame``): it hung up,
   transferred the caller, or left a voicemail / hung up on a machine;
2. the media stream's end: Twilio's ``stop`` (the other party hung up), our shutdown, an error;
3. Twilio's final ``CallStatus`` for calls that never reached the agent: busy, no answer,
   failed, canceled.
"""

from __future__ import annotations

from enum import StrEnum


class EndReason(StrEnum):
    """Why a call ended."""

    CALLER_HUNG_UP = "caller_hung_up"
    AGENT_HUNG_UP = "agent_hung_up"
    TRANSFERRED = "transferred"
    VOICEMAIL = "voicemail"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"
    SERVER_SHUTDOWN = "server_shutdown"
    ERROR = "error"


END_REASONS = tuple(reason.value for reason in EndReason)

_TRANSPORT = {
    "stop": EndReason.CALLER_HUNG_UP,  # Twilio ended the stream: the other party hung up
    "ended": EndReason.AGENT_HUNG_UP,  # the pipeline ended itself
    "server_shutdown": EndReason.SERVER_SHUTDOWN,
}

_NO_STREAM = {
    "busy": EndReason.BUSY,
    "no-answer": EndReason.NO_ANSWER,
    "failed": EndReason.FAILED,
    "canceled": EndReason.CANCELED,
    # Answered, yet no media stream reached the agent (refused, unreachable, bad signature).
    "completed": EndReason.ERROR,
}

TERMINAL_STATUSES = frozenset(("completed", "busy", "no-answer", "failed", "canceled"))
"""Twilio ``CallStatus`` values after which the call is over."""


def from_transport(reason: str, *, twilio: bool = True) -> EndReason:
    """The end reason of a media stream that ended this way, absent the agent's own word.

    ``stop`` (Twilio stopped the stream) is the other party hanging up; ``ended`` (the pipeline
    ended itself) the agent; ``server_shutdown`` ours; anything else (a lost socket, a
    cancelled pipeline, bad media, protocol abuse) an error — except that a browser call
    (``twilio`` False: the softphone page) ends by closing its socket when the page goes away.
    """
    if reason in END_REASONS:
        return EndReason(reason)
    if reason == "socket_closed" and not twilio:
        return EndReason.CALLER_HUNG_UP
    return _TRANSPORT.get(reason, EndReason.ERROR)


def from_twilio_status(status: str) -> EndReason | None:
    """The end reason of a call that never had a media stream, from its final ``CallStatus``.

    None while the call is not over (``queued``, ``initiated``, ``ringing``, ``in-progress``).
    """
    return _NO_STREAM.get(status)
