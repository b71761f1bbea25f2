"""The caller's script, stepped chunk by chunk against a made-up agent (no network, no sleeping)."""

from collections.abc import Callable

import pytest
from emulator_fakes import tone_pcm8k

from voiceagent.emulator.audio import ulaw_encode
from voiceagent.emulator.playback import AgentState
from voiceagent.emulator.script import CHUNK_S, DTMF_GAP_S, SILENCE_CHUNK, CallerLine, CallScript


class ScriptedAgent:
    """An agent that replies ``delay_s`` after each caller line ends, for ``reply_s`` seconds."""

    def __init__(self, delay_s: float = 0.5, reply_s: float = 1.0, greeting_s: float = 0.0):
        self.delay_s, self.reply_s = delay_s, reply_s
        self.spans: list[tuple[float, float]] = []
        if greeting_s:
            self.spans.append((0.1, 0.1 + greeting_s))

    def caller_finished(self, at: float) -> None:
        self.spans.append((at + self.delay_s, at + self.delay_s + self.reply_s))

    def state(self, now: float) -> AgentState:
        started = [s for s in self.spans if s[0] <= now]
        if not started:
            return AgentState(playing=False, last_audio_s=None, last_start_s=None)
        start, end = started[-1]
        playing = now < end
        return AgentState(playing=playing, last_audio_s=now if playing else end, last_start_s=start)


def run(script: CallScript, agent: ScriptedAgent | Callable | None = None, limit_s: float = 60.0):
    """Step the script until it hangs up; returns the chunks, digits and events it produced."""
    chunks, digits, events = [], [], []
    tick = 0
    while tick * CHUNK_S < limit_s:
        now = (tick + 1) * CHUNK_S
        state = agent.state(now) if agent else AgentState(False, None, None)
        step = script.step(now, state)
        for kind, data in step.events:
            events.append((kind, data))
            if kind == "caller_line_end" and agent:
                agent.caller_finished(data["t"])
        if step.done:
            return chunks, digits, events
        assert len(step.chunk) == 160
        chunks.append(step.chunk)
        digits += [(now, d) for d in step.digits]
        tick += 1
    raise AssertionError("script never finished")


def line(seconds: float, **kw) -> CallerLine:
    return CallerLine(pcm8k=tone_pcm8k(seconds), **kw)


def test_caller_speaks_after_lead_in_then_waits_for_reply_and_its_pause():
    agent = ScriptedAgent(delay_s=0.5, reply_s=1.0)
    script = CallScript(
        [line(0.4, text="hi", pause_after_s=0.6), line(0.3, text="bye", pause_after_s=0.6)],
        lead_in_s=0.2,
        tail_s=0.5,
    )
    chunks, _, events = run(script, agent)
    assert script.line_starts[0] == pytest.approx(0.2)
    assert script.line_ends[0] == pytest.approx(0.6)
    # reply plays 1.1–2.1, then 0.6 s of quiet before the caller speaks again
    assert script.line_starts[1] == pytest.approx(2.7, abs=0.021)
    assert script.line_ends[1] == pytest.approx(script.line_starts[1] + 0.3, abs=1e-6)
    # reply 2 ends at line_end + 1.5, pause 0.6, tail 0.5
    assert len(chunks) * CHUNK_S == pytest.approx(script.line_ends[1] + 1.5 + 0.6 + 0.5, abs=0.05)
    assert [k for k, _ in events] == ["caller_line", "caller_line_end"] * 2
    assert events[0][1]["text"] == "hi"


def test_line_audio_is_sent_as_mulaw_chunks_padded_with_silence():
    pcm = tone_pcm8k(0.05)  # 400 samples = 2.5 chunks
    script = CallScript([CallerLine(pcm8k=pcm)], lead_in_s=0.0, tail_s=0.0, max_wait_reply_s=0.1)
    chunks, _, _ = run(script)
    ulaw = ulaw_encode(pcm)
    assert chunks[0] == ulaw[:160] and chunks[1] == ulaw[160:320]
    assert chunks[2] == ulaw[320:] + b"\xff" * 80
    assert all(c == SILENCE_CHUNK for c in chunks[3:])


def test_no_reply_gives_up_after_max_wait_and_says_the_next_line():
    script = CallScript([line(0.2), line(0.2)], lead_in_s=0.0, tail_s=0.0, max_wait_reply_s=1.0)
    _, _, events = run(script)
    assert script.line_starts[1] == pytest.approx(script.line_ends[0] + 1.0, abs=0.021)
    assert [k for k, _ in events].count("no_reply") == 2


def test_mid_sentence_pause_does_not_wait_for_the_agent():
    agent = ScriptedAgent(delay_s=0.2, reply_s=3.0)
    script = CallScript(
        [line(0.3, pause_after_s=0.4, wait_for_reply=False), line(0.3)], lead_in_s=0.0, tail_s=0.0
    )
    run(script, agent)
    assert script.line_starts[1] == pytest.approx(script.line_ends[0] + 0.4, abs=0.021)


def test_barge_in_line_starts_talking_over_the_reply_after_the_given_delay():
    agent = ScriptedAgent(delay_s=0.5, reply_s=3.0)
    script = CallScript(
        [line(0.4), line(0.5, start_after_agent_audio_s=0.7)],
        lead_in_s=0.1,
        tail_s=0.0,
        max_wait_reply_s=2.0,
    )
    run(script, agent)
    reply_start = script.line_ends[0] + 0.5
    assert script.line_starts[1] == pytest.approx(reply_start + 0.7, abs=0.021)


def test_caller_lets_the_greeting_finish_before_the_first_line():
    agent = ScriptedAgent(greeting_s=2.0)
    script = CallScript([line(0.2)], lead_in_s=0.5, tail_s=0.0, max_wait_reply_s=0.5)
    run(script, agent)
    assert script.line_starts[0] == pytest.approx(2.1 + 0.5, abs=0.021)


def test_keypad_digits_follow_the_line_spaced_like_key_presses():
    script = CallScript([line(0.2, dtmf="12#")], lead_in_s=0.0, tail_s=0.0, max_wait_reply_s=0.2)
    _, digits, events = run(script)
    assert [d for _, d in digits] == ["1", "2", "#"]
    times = [t for t, _ in digits]
    assert times[0] > script.line_starts[0] + 0.2
    assert times[1] - times[0] == pytest.approx(DTMF_GAP_S, abs=0.021)
    assert script.line_ends[0] == pytest.approx(times[-1])
    assert script.digits_sent == 3
    assert [k for k, _ in events].count("dtmf") == 3


def test_keypad_only_line_sends_digits_without_audio():
    script = CallScript(
        [CallerLine(pcm8k=b"", dtmf="9")], lead_in_s=0.1, tail_s=0.0, max_wait_reply_s=0.1
    )
    chunks, digits, _ = run(script)
    assert [d for _, d in digits] == ["9"]
    assert all(c == SILENCE_CHUNK for c in chunks)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pcm8k": b"\x00"},
        {"pcm8k": b"", "dtmf": "1x"},
        {"pcm8k": b"", "pause_after_s": -1.0},
        {"pcm8k": b"", "start_after_agent_audio_s": -0.1},
    ],
)
def test_bad_caller_lines_are_rejected_with_a_clear_error(kwargs):
    with pytest.raises(ValueError, match="caller line"):
        CallerLine(**kwargs)


def test_empty_script_just_listens_for_lead_in_and_tail():
    script = CallScript([], lead_in_s=0.2, tail_s=0.3)
    chunks, _, _ = run(script)
    assert len(chunks) * CHUNK_S == pytest.approx(0.5, abs=0.021)


def test_a_caller_who_expects_a_greeting_waits_for_a_slow_one_and_lets_it_finish():
    """The greeting starts 1.5 s into the call (a slow TTS): the caller does not talk over it."""

    class SlowGreeting(ScriptedAgent):
        def __init__(self) -> None:
            super().__init__(delay_s=0.5, reply_s=0.5)
            self.spans.append((1.5, 3.0))

    script = CallScript([line(0.4, text="hi")], lead_in_s=0.5, tail_s=0.2, greeting_wait_s=4.0)
    run(script, SlowGreeting())
    assert script.line_starts[0] == pytest.approx(3.5, abs=0.021)  # greeting end + lead-in
    # no greeting at all: the caller speaks once the wait is over
    lonely = CallScript([line(0.4, text="hi")], lead_in_s=0.5, tail_s=0.2, greeting_wait_s=2.0)
    run(lonely, ScriptedAgent())
    assert lonely.line_starts[0] == pytest.approx(2.0, abs=0.021)


class KeyStoppedAgent:
    """Talks 0-10 s; a key at ``key_s`` cuts that answer by a ``clear`` 60 ms later, and the
    reply to the key plays from ``key_s`` + ``reply_delay_s`` for 1 s."""

    def __init__(self, reply_delay_s: float) -> None:
        self.key_s: float | None = None
        self.reply_delay_s = reply_delay_s

    def caller_finished(self, at: float) -> None:
        self.key_s = at

    def state(self, now: float) -> AgentState:
        if self.key_s is None or now < self.key_s + 0.06:
            return AgentState(playing=True, last_audio_s=now, last_start_s=0.0)
        cleared = self.key_s + 0.06
        reply = self.key_s + self.reply_delay_s
        if now < reply:
            return AgentState(False, cleared, 0.0, last_clear_s=cleared)
        playing = now < reply + 1.0
        last = now if playing else reply + 1.0
        return AgentState(playing, last, reply, last_clear_s=cleared)


def test_a_key_over_the_agent_waits_for_the_reply_to_the_key_not_the_answer_it_stopped():
    """The keypad-only line ends at the key, while the old answer still plays; the clear that
    cuts it is not the reply: the caller stays until the reply (2 s later) has played."""
    agent = KeyStoppedAgent(reply_delay_s=2.0)
    key = CallerLine(pcm8k=b"", dtmf="0", start_after_agent_audio_s=1.0, pause_after_s=0.5)
    script = CallScript([key], lead_in_s=0.0, tail_s=0.2)
    chunks, _, _ = run(script, agent)
    hung_up_s = len(chunks) * CHUNK_S
    reply_end = agent.key_s + 2.0 + 1.0
    assert hung_up_s == pytest.approx(reply_end + 0.5 + 0.2, abs=0.05)
