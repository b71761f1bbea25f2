"""The agent never starts a turn over a caller who is making a sound."""

from __future__ import annotations

import numpy as np
from clocked_pipeline import UP, Call
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.utils.text.base_text_aggregator import TextType

from voiceagent.clock import ManualClock
from voiceagent.frames import CallerSoundFrame
from voiceagent.processors.caller_sound import CallerSoundDetector
from voiceagent.processors.floor_hold import FloorHold
from voiceagent.settings import PIPELINE_SAMPLE_RATE

RATE = PIPELINE_SAMPLE_RATE
N = RATE // 50  # samples per 20 ms frame


def tone(rms: float) -> bytes:
    t = np.arange(N) / RATE
    return (np.sin(2 * np.pi * 220 * t) * rms * np.sqrt(2)).astype("<i2").tobytes()


def noise(rms: float, seed: int) -> bytes:
    return (np.random.default_rng(seed).normal(0, rms, N)).astype("<i2").tobytes()


def reply(text: str = "Sure,") -> list:
    audio = TTSAudioRawFrame(b"\x01\x00" * N, RATE, 1)
    return [TTSStartedFrame(), audio, TTSTextFrame(text, TextType.SENTENCE), TTSStoppedFrame()]


def audio_out(call: Call) -> list[TTSAudioRawFrame]:
    return [f for f in call.down if isinstance(f, TTSAudioRawFrame)]


# -- the detector ---------------------------------------------------------------------------


def test_caller_resumes_after_a_pause_the_line_turns_loud_in_two_frames():
    detector = CallerSoundDetector()
    line_noise = [noise(40, i) for i in range(50)]  # a quiet phone line: 1 s
    assert [detector.update(f) for f in line_noise] == [None] * 50
    # Caller: "... maybe in the afternoon" — speech at ~2000 RMS.
    assert detector.update(tone(2000)) is None
    assert detector.update(tone(2000)) is True
    assert [detector.update(tone(2000)) for _ in range(20)] == [None] * 20
    # They stop: quiet again after 5 frames (100 ms).
    assert [detector.update(noise(40, 99 + i)) for i in range(5)] == [None] * 4 + [False]


def test_a_click_or_a_steady_hum_is_not_a_sound():
    detector = CallerSoundDetector()
    detector.update(noise(40, 1))
    assert detector.update(tone(3000)) is None  # one loud frame: a click
    assert detector.update(noise(40, 2)) is None
    hum = CallerSoundDetector()
    assert [hum.update(tone(250)) for _ in range(100)] == [None] * 100  # below min_rms
    assert detector.onsets == 0 and not hum.sounding


# -- the hold -------------------------------------------------------------------------------


async def test_reply_waits_while_the_caller_makes_a_sound_then_plays():
    clock = ManualClock()
    hold = FloorHold(clock=clock)
    async with Call(hold, clock) as call:
        # Agent silent; the caller's line turns loud as the committed reply arrives.
        await call.send(CallerSoundFrame(sounding=True), *reply())
        assert audio_out(call) == [] and hold.holding
        await call.advance(0.2)
        await call.send(CallerSoundFrame(sounding=False))  # only a breath
        assert len(audio_out(call)) == 1 and not hold.holding
        kinds = [type(f) for f in call.down if not isinstance(f, CallerSoundFrame)]
        assert kinds == [TTSStartedFrame, TTSAudioRawFrame, TTSTextFrame, TTSStoppedFrame]
        assert hold.holds == 1 and abs(hold.held_s_total - 0.2) < 1e-9


async def test_caller_resumes_and_the_router_cancels_the_held_reply_unheard():
    clock = ManualClock()
    hold = FloorHold(clock=clock)
    async with Call(hold, clock) as call:
        await call.send(CallerSoundFrame(sounding=True), *reply("Of course,"))
        await call.advance(0.3)
        await call.send(InterruptionFrame())  # the router's regret: cancel the reply
        await call.send(CallerSoundFrame(sounding=False))
        assert audio_out(call) == []
        # The next reply, once the caller is done, plays at once.
        await call.send(*reply("Sure, Tuesday at two."))
        assert len(audio_out(call)) == 1


async def test_a_turn_that_already_started_is_never_held():
    clock = ManualClock()
    hold = FloorHold(clock=clock)
    async with Call(hold, clock) as call:
        await call.send(*reply("Our hours are"))
        await call.send(BotStartedSpeakingFrame(), direction=UP)
        await call.send(CallerSoundFrame(sounding=True), *reply("eight to five."))
        assert len(audio_out(call)) == 2  # talking over the agent: the barge-in gate decides
        await call.send(BotStoppedSpeakingFrame(), direction=UP)
        await call.send(*reply("Anything else?"))
        assert len(audio_out(call)) == 2 and hold.holding  # a new turn waits again


async def test_the_hold_never_lasts_more_than_max_hold():
    clock = ManualClock()
    hold = FloorHold(max_hold_s=1.0, clock=clock)
    async with Call(hold, clock) as call:
        await call.send(CallerSoundFrame(sounding=True), *reply())
        await call.advance(0.99)
        assert audio_out(call) == []
        await call.advance(0.02)  # the line stays loud (a radio): the agent speaks anyway
        assert len(audio_out(call)) == 1
        await call.send(*reply("more"))
        assert len(audio_out(call)) == 2


async def test_detector_and_hold_in_one_chain_pass_every_caller_frame():
    clock = ManualClock()
    detector = CallerSoundDetector()
    async with Call(detector, clock) as call:
        frames = [InputAudioRawFrame(tone(2000), RATE, 1) for _ in range(3)]
        await call.send(*frames)
        sounds = [f for f in call.down if isinstance(f, CallerSoundFrame)]
        assert [s.sounding for s in sounds] == [True]
        assert sum(isinstance(f, InputAudioRawFrame) for f in call.down) == 3
