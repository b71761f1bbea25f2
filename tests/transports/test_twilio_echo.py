"""The agent's echo on the caller's line (a speakerphone): muted; the caller over it: not."""

from __future__ import annotations

import math

import numpy as np
from pipecat.frames.frames import InputAudioRawFrame

from voiceagent.clock import ManualClock
from voiceagent.processors.caller_voice import CallerVoiceProcessor
from voiceagent.transports.twilio.codec import pcm16_to_ulaw
from voiceagent.transports.twilio.echo import AgentEcho

RATE = 8000
BLOCK = RATE // 50  # 20 ms


def agent_voice(seconds: float, rms: float = 4000.0, seed: int = 1) -> np.ndarray:
    """Syllables: 120–260 ms of a voiced tone at varying level, 40–160 ms apart."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE))
    at = 0
    while at < out.size:
        n = int(rng.uniform(0.12, 0.26) * RATE)
        t = np.arange(n) / RATE
        envelope = np.sin(np.pi * np.arange(n) / n)
        level = rms * math.sqrt(2) * rng.uniform(0.5, 1.3)
        out[at : at + n] = (np.sin(2 * np.pi * rng.uniform(110, 220) * t) * envelope * level)[
            : out.size - at
        ]
        at += n + int(rng.uniform(0.04, 0.16) * RATE)
    return out


def rms(x: np.ndarray) -> float:
    return math.sqrt(float(np.mean(x**2))) if x.size else 0.0


def play(
    echo: AgentEcho, clock: ManualClock, agent: np.ndarray, line: np.ndarray
) -> list[tuple[float, bool]]:
    """The agent's audio plays block by block (sent as it plays); each block of ``line``, what
    the caller's line carried meanwhile, is judged as it arrives: (its level, muted)."""
    judged = []
    for i in range(0, min(agent.size, line.size) - BLOCK + 1, BLOCK):
        chunk = np.clip(agent[i : i + BLOCK], -32768, 32767).astype("<i2").tobytes()
        echo.agent_audio(0, pcm16_to_ulaw(chunk), clock.now())
        clock.advance(BLOCK / RATE)
        level = rms(line[i : i + BLOCK])
        judged.append((level, echo.is_echo(level)))
    return judged


def delayed(x: np.ndarray, seconds: float, gain_db: float) -> np.ndarray:
    d = int(seconds * RATE)
    out = np.zeros_like(x)
    out[d:] = x[: x.size - d] * 10 ** (gain_db / 20)
    return out


def test_a_speakerphone_echo_is_muted_and_the_caller_talking_over_the_agent_is_not():
    """The agent talks for 6 s; its voice comes back 150 ms later, 15 dB down (a speakerphone).
    From 4 s to 5 s the caller talks over it at their normal level. Muting is a suppressor's,
    not a canceller's: the quiet start of a syllable after a pause is lost with the echo."""
    clock = ManualClock()
    echo = AgentEcho(clock=clock)
    agent = agent_voice(6.0)
    caller = np.zeros_like(agent)
    caller[4 * RATE : 5 * RATE] = agent_voice(1.0, rms=3000.0, seed=9)
    judged = play(echo, clock, agent, delayed(agent, 0.15, -15.0) + caller)
    echo_only = [muted for i, (level, muted) in enumerate(judged) if 25 <= i < 200 and level > 50]
    assert sum(echo_only) / len(echo_only) >= 0.97  # after the first 0.5 s: the echo is silence
    talking = [(level, muted) for level, muted in judged[200:250] if level > 300]
    assert not any(muted for level, muted in talking if level >= 1500)  # the caller is heard
    # ... all but the quiet starts of syllables that follow a pause (a block or two each):
    assert sum(muted for _, muted in talking) / len(talking) <= 0.2


def test_without_agent_audio_nothing_is_echo():
    clock = ManualClock()
    echo = AgentEcho(clock=clock)
    assert not echo.is_echo(0.0) and not echo.is_echo(3000.0)
    play(echo, clock, agent_voice(2.0), delayed(agent_voice(2.0), 0.15, -15.0))
    clock.advance(1.5)  # the agent stopped 1.5 s ago: its echo is over
    assert not echo.agent_audible()
    assert not echo.is_echo(200.0)


def test_a_clear_takes_the_audio_that_never_played_out_of_the_reference():
    clock = ManualClock()
    echo = AgentEcho(clock=clock)
    loud = pcm16_to_ulaw((np.ones(BLOCK) * 8000).astype("<i2").tobytes())
    quiet = pcm16_to_ulaw((np.ones(BLOCK) * 1000).astype("<i2").tobytes())
    now = clock.now()
    echo.agent_audio(0, quiet, now - 0.02)  # played
    for k in range(10):  # sent ahead, to play over the next 200 ms
        echo.agent_audio(0, loud, now + 0.02 * k + 0.02)
    echo.agent_cleared(now)  # barge-in: Twilio drops what it had not played
    clock.advance(0.1)
    assert echo.reference()[0] < 1100


def test_on_a_line_without_echo_a_quiet_caller_over_the_agent_is_heard():
    """No echo, office-level noise 26 dB under the agent; the caller talks 12 dB under it."""
    clock = ManualClock()
    echo = AgentEcho(clock=clock)
    agent = agent_voice(5.0)
    rng = np.random.default_rng(3)
    line = rng.standard_normal(agent.size) * 200.0
    line[3 * RATE : 4 * RATE] += agent_voice(1.0, rms=1000.0, seed=5)
    judged = play(echo, clock, agent, line)
    talking = [muted for level, muted in judged[150:200] if level > 400]
    assert sum(talking) / len(talking) <= 0.05


def test_the_voice_stage_mutes_the_echo_before_the_vad_and_the_stt_hear_it():
    """3 s of the agent and its speakerphone echo learnt; then a 40 ms frame at the echo's level
    is silence to every stage after the voice stage, the caller at the agent's level is not."""
    clock = ManualClock()
    echo = AgentEcho(clock=clock)
    agent = agent_voice(3.0)
    play(echo, clock, agent, delayed(agent, 0.15, -15.0))
    stage = CallerVoiceProcessor()
    stage.echo = echo

    def frame(level: float) -> InputAudioRawFrame:  # 40 ms at the pipeline's 16 kHz
        tone = np.sin(2 * np.pi * 150 * np.arange(640) / 16000) * level * math.sqrt(2)
        return InputAudioRawFrame(tone.astype("<i2").tobytes(), 16000, 1)

    echo_level = frame(600.0)
    stage._mute_echo(echo_level, *stage.sound.energies(echo_level.audio, 16000))
    assert echo_level.audio == bytes(1280)
    caller = frame(4000.0)
    heard = caller.audio
    stage._mute_echo(caller, *stage.sound.energies(caller.audio, 16000))
    assert caller.audio == heard


def test_on_a_noisy_line_without_echo_nothing_is_muted():
    """Street-level noise (400 RMS) and no echo while the agent talks: what comes back is the
    line's own noise, not an echo standing out of it; muting it would clip the starts of the
    caller's words. Every frame goes through, and a caller talking over the agent 14 dB over
    the noise is loud at once."""
    clock = ManualClock()
    echo = AgentEcho(clock=clock)
    rng = np.random.default_rng(4)
    agent = agent_voice(3.0)
    play(echo, clock, agent, rng.standard_normal(agent.size) * 400.0)
    stage = CallerVoiceProcessor()

    def line(caller_rms: float) -> InputAudioRawFrame:
        noise = rng.standard_normal(640) * 400.0
        voice = np.sin(2 * np.pi * 180 * np.arange(640) / 16000) * caller_rms * math.sqrt(2)
        return InputAudioRawFrame((noise + voice).astype("<i2").tobytes(), 16000, 1)

    for _ in range(10):  # the call's first 400 ms: the stage learns the line
        stage.sound.update(line(0.0).audio, 16000)
    stage.echo = echo
    changes = []
    for caller in [0.0] * 25 + [2000.0] * 5:  # 1 s of noise under the agent; the caller talks
        frame = line(caller)
        heard = frame.audio
        muted = stage._mute_echo(frame, *stage.sound.energies(frame.audio, 16000))
        assert frame.audio == heard and muted is None
        changes.append(stage.sound.update(frame.audio, 16000, muted))
    assert True in changes[25:27]


def test_muted_echo_leaves_the_onsets_noise_floor_the_lines_own():
    """On a speakerphone line with noise 30 dB under the agent, the muted echo is not taken for
    the line's quiet: the onset's floor stays the noise's."""
    clock = ManualClock()
    echo = AgentEcho(clock=clock)
    rng = np.random.default_rng(6)
    agent = agent_voice(4.0)
    noise = rng.standard_normal(agent.size) * 120.0
    back = delayed(agent, 0.15, -15.0) + noise
    stage = CallerVoiceProcessor()
    for _ in range(10):  # before the agent talks: the line's noise
        stage.sound.update((rng.standard_normal(640) * 120.0).astype("<i2").tobytes(), 16000)
    floor = stage.sound.floor
    stage.echo = echo
    muted_any = False
    for i in range(0, agent.size - 2 * BLOCK + 1, 2 * BLOCK):  # 40 ms frames as they play
        for k in (0, BLOCK):
            chunk = np.clip(agent[i + k : i + k + BLOCK], -32768, 32767).astype("<i2").tobytes()
            echo.agent_audio(0, pcm16_to_ulaw(chunk), clock.now())
            clock.advance(BLOCK / RATE)
        pcm16k = np.repeat(back[i : i + 2 * BLOCK], 2).astype("<i2").tobytes()
        frame = InputAudioRawFrame(pcm16k, 16000, 1)
        muted = stage._mute_echo(frame, *stage.sound.energies(frame.audio, 16000))
        muted_any = muted_any or bool(muted)
        stage.sound.update(frame.audio, 16000, muted)
    assert muted_any
    assert stage.sound.floor >= floor * 0.5  # not fallen to the muted blocks' zero
