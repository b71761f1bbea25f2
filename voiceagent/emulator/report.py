"""What the caller emulator observed on one call: its turns and the call as a whole."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TurnReport:
    """One caller line and the agent's reply to it (times in seconds since stream start).

    ``index`` is the line's 0-based position in the script. ``caller_end_s`` is when the
    caller finished the line (its audio, then its keypad digits). The reply window runs to
    the end of the next line; ``first_agent_audio_s`` is the first agent utterance that
    started playing in it, ``agent_audio_s`` the agent audio played in it.
    """

    index: int
    caller_text: str
    caller_end_s: float
    first_agent_audio_s: float | None
    latency_ms: float | None
    agent_audio_s: float
    caller_start_s: float = 0.0


@dataclass
class CallReport:
    """Everything the caller observed during one call."""

    heard_pcm8k: bytes
    turns: list[TurnReport]
    marks_received: int
    marks_echoed: int
    clears: int
    media_received: int
    duration_s: float
    closed_by_server: bool
    malformed_messages: int = 0
    agent_glitches: int = 0  # playback ran dry inside a segment and resumed (a dropout)
    agent_pauses: int = 0  # playback ran dry at a segment's mark and resumed within 250 ms
    dtmf_sent: int = 0
    media_lost: int = 0  # caller media messages the line condition lost
    agent_utterances_s: list[float] = field(default_factory=list)
    stream_sid: str = ""
    call_sid: str = ""
    close_code: int | None = None  # the server's WebSocket close code, when it closed the call
    close_reason: str = ""
    sends_late: int = 0  # media messages sent a whole frame (20 ms) or more behind schedule
    send_late_max_ms: float = 0.0  # the worst lateness of a media message (the caller's loop)
