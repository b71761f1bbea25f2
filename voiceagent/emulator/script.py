"""What the emulated caller says and when: lines, pauses, keypad digits, barge-ins.

``CallScript`` is a pure state machine stepped once per 20 ms chunk with the stream time and
the agent's audio state; it returns the μ-law chunk to send and any DTMF digits. It never
sleeps, so it is unit-tested by stepping it with made-up agent states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from loguru import logger

from voiceagent.emulator.audio import ULAW_SILENCE, ulaw_encode
from voiceagent.emulator.playback import AgentState

CHUNK_S = 0.02
CHUNK_BYTES = 160  # 20 ms of 8 kHz μ-law
DTMF_GAP_S = 0.25  # between two key presses of one line
MAX_REPLY_S = 120.0  # give up on a reply that keeps playing this long
DTMF_DIGITS = frozenset("0123456789*#")  # what Twilio reports
SILENCE_CHUNK = bytes((ULAW_SILENCE,)) * CHUNK_BYTES


@dataclass
class CallerLine:
    """One thing the caller says.

    Attributes:
        pcm8k: the caller's audio, PCM16 mono 8 kHz (may be empty for a keypad-only line).
        pause_after_s: quiet that ends the agent's reply (or, without waiting, the pause).
        text: what the audio says (for reports and live transcripts).
        dtmf: keypad digits pressed after the audio.
        start_after_agent_audio_s: barge in: start this many seconds after the agent's reply
            audio starts, talking over it, instead of waiting for the reply to finish.
        wait_for_reply: after the line, wait for the agent's reply; if False, just pause
            ``pause_after_s`` and go on (a mid-sentence pause).
    """

    pcm8k: bytes
    pause_after_s: float = 1.5
    text: str = ""
    dtmf: str = ""
    start_after_agent_audio_s: float | None = None
    wait_for_reply: bool = True

    def __post_init__(self) -> None:
        if len(self.pcm8k) % 2:
            raise ValueError(f"caller line {self.text!r}: PCM16 audio has an odd byte count")
        bad = set(self.dtmf) - DTMF_DIGITS
        if bad:
            raise ValueError(f"caller line {self.text!r}: not DTMF digits: {''.join(sorted(bad))}")
        if self.pause_after_s < 0:
            raise ValueError(f"caller line {self.text!r}: pause_after_s must be ≥ 0")
        if self.start_after_agent_audio_s is not None and self.start_after_agent_audio_s < 0:
            raise ValueError(f"caller line {self.text!r}: start_after_agent_audio_s must be ≥ 0")


@dataclass
class ScriptStep:
    """The output of one 20 ms step."""

    chunk: bytes = SILENCE_CHUNK
    digits: str = ""
    events: list[tuple[str, dict]] = field(default_factory=list)
    done: bool = False


class _Phase(Enum):
    LEAD_IN = "lead_in"
    WAIT_BARGE = "wait_barge"
    SPEAK = "speak"
    DTMF = "dtmf"
    WAIT_REPLY = "wait_reply"
    PAUSE = "pause"
    TAIL = "tail"
    DONE = "done"


class CallScript:
    """Turns caller lines into a 20 ms chunk stream that reacts to the agent's audio.

    Before the first line the caller is silent for ``lead_in_s``; if the agent greets meanwhile,
    the caller lets the greeting finish and stay quiet for ``lead_in_s`` first. After each line
    it waits for the reply: silent until agent audio has played and then been quiet for the
    line's ``pause_after_s`` (or ``max_wait_reply_s`` passed with no agent audio at all). After
    the last line it stays on the line ``tail_s`` more seconds. With ``wait_for_greeting``
    False the first line starts after ``lead_in_s`` whatever the agent does: an answering
    machine plays its greeting over anyone. With ``greeting_wait_s`` the caller, like one who
    expects to be greeted, waits that long for a greeting to start before speaking first.
    """

    def __init__(
        self,
        lines: list[CallerLine],
        *,
        lead_in_s: float = 0.5,
        tail_s: float = 4.0,
        max_wait_reply_s: float = 15.0,
        wait_for_greeting: bool = True,
        greeting_wait_s: float = 0.0,
    ) -> None:
        """Prepare the script; times are stream seconds."""
        self.lines = list(lines)
        self.wait_for_greeting = wait_for_greeting
        self.greeting_wait_s = greeting_wait_s if wait_for_greeting else 0.0
        self.lead_in_s = max(0.0, lead_in_s)
        self.tail_s = max(0.0, tail_s)
        self.max_wait_reply_s = max(0.0, max_wait_reply_s)
        self.line_starts: list[float | None] = [None] * len(self.lines)
        self.line_ends: list[float | None] = [None] * len(self.lines)
        self.digits_sent = 0
        self._index = 0
        self._ulaw = b""
        self._offset = 0
        self._digit = 0
        self._next_digit_s = 0.0
        self._ref_s = 0.0  # reference time of the current wait
        self._anchor_s: float | None = None  # agent audio start a barge-in counts from
        self._until_s = 0.0
        self._phase = _Phase.LEAD_IN
        if self.lines and self.lines[0].start_after_agent_audio_s is not None:
            self._phase = _Phase.WAIT_BARGE

    @property
    def done(self) -> bool:
        """True once the script has finished (the caller hangs up)."""
        return self._phase is _Phase.DONE

    @property
    def phase(self) -> str:
        """Name of the current phase (for logs and tests)."""
        return self._phase.value

    def step(self, now_s: float, agent: AgentState) -> ScriptStep:
        """Produce the chunk that ends at stream time ``now_s``."""
        out = ScriptStep()
        for _ in range(8):  # phases that produce no audio hand over to the next at once
            if self._step_phase(now_s, agent, out):
                return out
        logger.error(f"caller script stuck in phase {self._phase.value}; hanging up")
        self._phase = _Phase.DONE
        out.done = True
        return out

    # ----- phases ---------------------------------------------------------------------------

    def _step_phase(self, now: float, agent: AgentState, out: ScriptStep) -> bool:
        """Advance the current phase; True when ``out`` is final for this step.

        ``now`` is the end of the chunk being produced (when it is sent); ``begin`` its start,
        which is what waits compare against (a line starting here starts at ``begin``).
        """
        phase = self._phase
        begin = now - CHUNK_S + 1e-9
        if phase is _Phase.LEAD_IN:
            greeting = self.wait_for_greeting and (
                agent.playing
                or (agent.last_audio_s is not None and begin - agent.last_audio_s < self.lead_in_s)
            )
            awaited = agent.last_audio_s is None and begin < self.greeting_wait_s
            if begin < self.lead_in_s or awaited or (greeting and begin < MAX_REPLY_S):
                return True
            self._next_line(now - CHUNK_S)
            return False
        if phase is _Phase.WAIT_BARGE:
            return self._wait_barge(now, agent, out)
        if phase is _Phase.SPEAK:
            return self._speak(now, out)
        if phase is _Phase.DTMF:
            if now + 1e-9 < self._next_digit_s:
                return True
            line = self.lines[self._index]
            digit = line.dtmf[self._digit]
            out.digits += digit
            out.events.append(("dtmf", {"index": self._index, "digit": digit, "t": now}))
            self.digits_sent += 1
            self._digit += 1
            self._next_digit_s = now + DTMF_GAP_S
            if self._digit >= len(line.dtmf):
                self._line_done(now, out)
            return True
        if phase is _Phase.WAIT_REPLY:
            return self._wait_reply(now, agent, out)
        if phase is _Phase.PAUSE:
            if begin < self._until_s:
                return True
            self._next_line(now - CHUNK_S)
            return False
        if phase is _Phase.TAIL:
            if begin < self._until_s:
                return True
            self._phase = _Phase.DONE
        out.done = True
        out.chunk = b""
        return True

    def _next_line(self, begin: float) -> None:
        """Start the next line (it cannot be a barge-in here), or the tail after the last."""
        if self._index >= len(self.lines):
            self._phase = _Phase.TAIL
            self._until_s = begin + self.tail_s
            return
        self._begin_speaking()

    def _begin_speaking(self) -> None:
        line = self.lines[self._index]
        self._ulaw = ulaw_encode(line.pcm8k)
        self._offset = 0
        self._digit = 0
        self._phase = _Phase.SPEAK

    def _speak(self, now: float, out: ScriptStep) -> bool:
        index = self._index
        line = self.lines[index]
        if self.line_starts[index] is None:
            start = now - CHUNK_S if self._ulaw else now
            self.line_starts[index] = start
            out.events.append(("caller_line", {"index": index, "text": line.text, "t": start}))
        if not self._ulaw:  # keypad-only line
            if line.dtmf:
                self._phase = _Phase.DTMF
                self._next_digit_s = now
            else:
                self._line_done(now, out)
            return False
        chunk = self._ulaw[self._offset : self._offset + CHUNK_BYTES]
        self._offset += CHUNK_BYTES
        if len(chunk) < CHUNK_BYTES:
            chunk += bytes((ULAW_SILENCE,)) * (CHUNK_BYTES - len(chunk))
        out.chunk = chunk
        if self._offset >= len(self._ulaw):
            if line.dtmf:
                self._phase = _Phase.DTMF
                self._next_digit_s = now + CHUNK_S
            else:
                self._line_done(now, out)
        return True

    def _line_done(self, now: float, out: ScriptStep) -> None:
        """The caller finished line ``_index``: decide how to wait before the next one."""
        index = self._index
        line = self.lines[index]
        self.line_ends[index] = now
        out.events.append(("caller_line_end", {"index": index, "text": line.text, "t": now}))
        self._index += 1
        self._ref_s = now
        following = self.lines[self._index] if self._index < len(self.lines) else None
        if following is not None and following.start_after_agent_audio_s is not None:
            self._phase = _Phase.WAIT_BARGE
            self._anchor_s = None
        elif line.wait_for_reply:
            self._phase = _Phase.WAIT_REPLY
        else:
            self._phase = _Phase.PAUSE
            self._until_s = now + line.pause_after_s

    def _wait_reply(self, now: float, agent: AgentState, out: ScriptStep) -> bool:
        line = self.lines[self._index - 1]
        begin = now - CHUNK_S + 1e-9
        waited = begin - self._ref_s
        # Audio heard since the line ended is the reply, unless a clear since the line began
        # dropped it: the caller stopped that audio (a barge-in, a key) and waits for what the
        # agent sends after the clear (a keypad-only line ends at once, over the old answer).
        since = self._ref_s
        said_from = self.line_starts[self._index - 1]
        cleared = agent.last_clear_s
        if cleared is not None and said_from is not None and cleared >= said_from:
            since = max(since, cleared + 1e-6)
        started = (agent.playing and begin >= since) or (
            agent.last_audio_s is not None and agent.last_audio_s > since
        )
        if started:
            last = agent.last_audio_s if agent.last_audio_s is not None else begin
            quiet = not agent.playing and begin - last >= line.pause_after_s
            if not quiet and waited < MAX_REPLY_S:
                return True
            if not quiet:
                logger.warning(f"agent reply to caller line {self._index} still playing; going on")
        elif waited < self.max_wait_reply_s:
            return True
        else:
            out.events.append(("no_reply", {"index": self._index - 1, "t": now}))
            logger.info(f"no agent reply to caller line {self._index} within {waited:.1f} s")
        self._next_line(now - CHUNK_S)
        return False

    def _wait_barge(self, now: float, agent: AgentState, out: ScriptStep) -> bool:
        line = self.lines[self._index]
        if (
            self._anchor_s is None
            and agent.last_start_s is not None
            and (agent.playing or agent.last_start_s >= self._ref_s)
        ):
            self._anchor_s = agent.last_start_s
        begin = now - CHUNK_S + 1e-9
        if self._anchor_s is None:
            if begin - self._ref_s < self.max_wait_reply_s:
                return True
            out.events.append(("no_reply", {"index": self._index - 1, "t": now}))
            logger.info(f"no agent audio to barge in on before caller line {self._index + 1}")
        elif begin < self._anchor_s + (line.start_after_agent_audio_s or 0.0):
            return True
        self._begin_speaking()
        return False
