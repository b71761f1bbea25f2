"""The soft clear: the agent stops at the caller's first sound, and goes on or gives way.

At a ``PlaybackPauseFrame`` TwilioOutput sends ``clear`` at once (the agent is silent at the
caller within a frame) and takes back the audio Twilio had been sent but not played, with the
marks after it. A ``PlaybackResumeFrame`` (it was "uh-huh") plays on from where the caller
stopped hearing; an ``InterruptionFrame`` (a barge-in) drops the held audio unsent. The agent's
audio here is noise, so every 20 ms frame is different and the bytes tell exactly what played.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial

import numpy as np
import pytest
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
)

from voiceagent.clock import ManualClock
from voiceagent.frames import AgentHeardFrame, PlaybackPauseFrame, PlaybackResumeFrame
from voiceagent.transports.twilio.ledger import PlaybackLedger
from voiceagent.transports.twilio.line_format import PCM16_16K
from voiceagent.transports.twilio.outbound import MEDIA, OutboundQueue

from .conftest import CallRig
from .conftest import speech as tts_speech

GREETING = "Hello, thanks for calling Bright Smile Dental."
QUESTION = "How can I help you today?"
GREETING_80 = "Hello, thanks for calling Bright"  # the words within 80 % of the greeting
FRAME_S = 0.02
PAUSE = PlaybackPauseFrame(reason="caller_sound")
RESUME = PlaybackResumeFrame(reason="caller_quiet")


def noise(ms: int, rate: int, seed: int) -> bytes:
    """Speech-loud noise, int16 mono PCM: no two 20 ms frames alike."""
    rng = np.random.default_rng(seed)
    return rng.integers(-6000, 6000, rate * ms // 1000, dtype=np.int16).tobytes()


def noisy(text: str, n: int, ms: int, rate: int) -> bytes:
    """A TTS segment's audio: noise seeded by its text and place."""
    return noise(ms, rate, seed=hash(text) % 1000 + n)


speech = partial(tts_speech, sound=noisy)
"""A TTS's frames (40 ms chunks) whose every frame differs."""


@pytest.fixture
async def wide() -> AsyncIterator[CallRig]:
    """A started rig on a wideband leg (16 kHz PCM16, the browser softphone's)."""
    rig = CallRig(line_format=PCM16_16K)
    await rig.start()
    await rig.feed(rig.twilio.start(media_format=PCM16_16K.media_format()))
    try:
        yield rig
    finally:
        await rig.shutdown()


def sent_since(rig: CallRig, index: int) -> list[str]:
    return [m["event"] for m in rig.wire.sent[index:]]


def heard_frames(rig: CallRig) -> list[bytes]:
    """The frames the caller heard to their end by now, in order (not one a clear cut)."""
    now = rig.clock.now()
    return [
        payload
        for payload, start, seconds in rig.playback.plays()
        if seconds >= FRAME_S - 1e-9 and start + seconds <= now + 1e-9
    ]


def cut_frames(rig: CallRig) -> int:
    """Frames a clear cut while they played (heard in part)."""
    return sum(1 for _, _, seconds in rig.playback.plays() if 0.0 < seconds < FRAME_S - 1e-9)


def sent_frames(rig: CallRig) -> list[bytes]:
    """Every distinct frame sent, in the order first sent (the turn's audio, once)."""
    seen: dict[bytes, None] = {}
    for payload, _, _ in rig.playback.plays():
        seen.setdefault(payload, None)
    return list(seen)


def assert_heard_once(rig: CallRig, frames: int) -> None:
    """All ``frames`` of the agent's audio played to the caller once each, in order.

    Nothing was lost, and nothing repeated but the frame each clear cut (heard again from
    its start: at most 20 ms per clear).
    """
    assert len(sent_frames(rig)) == frames
    assert heard_frames(rig) == sent_frames(rig)
    assert cut_frames(rig) <= rig.wire.events().count("clear")


async def test_uh_huh_stops_the_agent_at_once_and_it_goes_on_where_the_caller_stopped_hearing(
    live: CallRig,
) -> None:
    rig = live
    await rig.queue(*speech([(GREETING, 1000)]))
    await rig.advance(0.51)  # 0.71 s sent; the caller is halfway into frame 26
    before = len(rig.wire.sent)
    await rig.queue(PAUSE)
    # The clear goes out at the caller's first sound, nothing else does.
    assert sent_since(rig, before) == ["clear"] and rig.wire.times[-1] == rig.clock.now()
    assert rig.call.output.pause_clears == 1 and rig.call.output.clears_sent == 1
    await rig.advance(0.6)  # "uh-huh"
    assert sent_since(rig, before) == ["clear"]
    # While paused the ledger counts the 25 whole frames heard (0.5 s of the 1 s greeting).
    assert rig.call.output.ledger.heard_text(1) == "Hello, thanks for"

    await rig.queue(RESUME)
    await rig.advance(1.0)
    # What Twilio got after the resume starts with what it held unplayed at the clear: the
    # frame being played (from its start) and the nine after it.
    plays = rig.playback.plays()
    cleared = [p for p, _, seconds in plays[:before] if seconds < FRAME_S - 1e-9]
    after = [m for m in rig.wire.sent[before + 1 :] if m["event"] == "media"]
    assert len(cleared) == 10 and [p for p, _, _ in plays[before : before + 10]] == cleared
    assert len(after) == 50 - 25  # 25 frames played before the clear, 25 after it
    assert_heard_once(rig, frames=50)
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert (heard.text, heard.interrupted) == (GREETING, False)
    assert len(rig.probe.upstream(BotStoppedSpeakingFrame)) == 1


async def test_a_barge_in_after_the_pause_never_sends_the_held_audio(live: CallRig) -> None:
    rig = live
    await rig.queue(*speech([(GREETING, 1000), (QUESTION, 1500)]))
    await rig.advance(1.5)  # the greeting and 0.5 s of the question played
    before = len(rig.wire.sent)
    await rig.queue(PAUSE)
    await rig.advance(0.5)  # "No, wait…": 0.5 s of speech
    await rig.queue(InterruptionFrame())
    await rig.advance(1.0)
    assert "media" not in sent_since(rig, before) and "mark" not in sent_since(rig, before)
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    # 0.5 s of the 1.5 s question played (33 %), not the 0.7 s Twilio had been sent.
    assert heard.interrupted and heard.text == f"{GREETING} How can"
    assert heard.unheard_text == "I help you today?"
    assert len(rig.probe.upstream(BotStoppedSpeakingFrame)) == 1


async def test_a_mark_in_the_unplayed_audio_goes_again_and_its_clear_echo_proves_nothing(
    live: CallRig,
) -> None:
    rig = live
    await rig.queue(*speech([(GREETING, 500), (QUESTION, 1000)]))
    await rig.advance(0.4)  # 0.6 s sent: the greeting's mark went out, 0.1 s before the end
    assert rig.wire.marks() == ["a1.1"] and not rig.playback.echoed
    before = len(rig.wire.sent)
    await rig.queue(PAUSE)
    await rig.advance(0.5)  # Twilio echoes a1.1 at the clear: it never played
    assert rig.playback.echoed == {"a1.1"}
    assert rig.call.output.ledger.heard_text(1) == GREETING_80  # 0.4 of 0.5 s
    assert not rig.probe.upstream(AgentHeardFrame)

    await rig.queue(RESUME)
    await rig.advance(0.05)
    # The greeting's last 0.1 s goes again, then its mark under a new name.
    assert rig.wire.marks() == ["a1.1", "a1.1r1"]
    resent = rig.wire.sent[before + 1 :]
    assert [m["event"] for m in resent][:6] == ["media"] * 5 + ["mark"]
    # 0.45 s of the greeting heard (90 %): not all of it before its mark comes back.
    assert rig.call.output.ledger.heard_text(1) == "Hello, thanks for calling Bright Smile"
    await rig.advance(0.1)  # a1.1r1 echoed: now the greeting was heard
    assert "a1.1r1" in rig.playback.echoed
    assert rig.call.output.ledger.heard_text(1) == GREETING
    await rig.advance(1.2)
    assert_heard_once(rig, frames=75)
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert (heard.text, heard.interrupted) == (f"{GREETING} {QUESTION}", False)


async def test_a_barge_in_after_the_clear_echo_keeps_only_the_played_share_of_the_segment(
    live: CallRig,
) -> None:
    rig = live
    await rig.queue(*speech([(GREETING, 500), (QUESTION, 1000)]))
    await rig.advance(0.4)
    await rig.queue(PAUSE)
    await rig.advance(0.5)  # the clear's echo of a1.1 came
    await rig.queue(InterruptionFrame())
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert heard.interrupted and heard.text == GREETING_80


async def test_pause_resume_pause_again(live: CallRig) -> None:
    rig = live
    await rig.queue(*speech([(GREETING, 1000), (QUESTION, 500)]))
    await rig.advance(0.5)
    await rig.queue(PAUSE)  # a cough
    await rig.advance(0.3)
    await rig.queue(RESUME)
    await rig.advance(0.43)
    await rig.queue(PAUSE)  # another: 0.93 s heard, the greeting's mark among what Twilio held
    assert rig.call.output.pause_clears == 2
    await rig.advance(0.3)
    assert rig.call.output.ledger.heard_text(1) == "Hello, thanks for calling Bright Smile"
    await rig.queue(RESUME)
    await rig.advance(1.0)
    assert_heard_once(rig, frames=75)
    assert rig.wire.marks()[-1] == "a1.2"
    assert "a1.1r2" in rig.wire.marks() and rig.wire.marks().count("a1.2") == 1
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert (heard.text, heard.interrupted) == (f"{GREETING} {QUESTION}", False)


async def test_a_pause_in_a_gap_between_segments_sends_no_clear(live: CallRig) -> None:
    # The greeting has played out and the next sentence's audio is late: nothing plays at the
    # caller, so there is nothing to clear; audio arriving during the pause waits for it.
    rig = live
    await rig.queue(*speech([(GREETING, 400)], stopped=False))
    await rig.advance(0.6)
    before = len(rig.wire.sent)
    await rig.queue(PAUSE)
    await rig.queue(*speech([(QUESTION, 400)], started=False))
    await rig.advance(0.4)
    assert sent_since(rig, before) == []
    await rig.queue(RESUME)
    await rig.advance(0.8)
    assert rig.call.output.pause_clears == 0
    assert_heard_once(rig, frames=40)
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert (heard.text, heard.interrupted) == (f"{GREETING} {QUESTION}", False)


async def test_a_pause_at_the_tail_of_a_segment_takes_back_only_the_tail(live: CallRig) -> None:
    # The next sentence is late and Twilio holds the greeting's last 60 ms and its mark.
    rig = live
    await rig.queue(*speech([(GREETING, 400)], stopped=False))
    await rig.advance(0.34)
    before = len(rig.wire.sent)
    await rig.queue(PAUSE)
    await rig.queue(*speech([(QUESTION, 400)], started=False))
    await rig.advance(0.3)
    assert sent_since(rig, before) == ["clear"]
    await rig.queue(RESUME)
    await rig.advance(0.05)
    resent = [m["event"] for m in rig.wire.sent[before + 1 :]]
    assert resent[:4] == ["media"] * 3 + ["mark"] and rig.wire.marks()[-1] == "a1.1r1"
    await rig.advance(0.8)
    assert_heard_once(rig, frames=40)
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert (heard.text, heard.interrupted) == (f"{GREETING} {QUESTION}", False)


async def test_a_turn_whose_end_was_sent_waits_through_the_pause_and_ends_once(
    live: CallRig,
) -> None:
    # All of "Sure." went out by 0.3 s (the turn's end too); the caller speaks at 0.35 s, for
    # longer than the output would wait for a missing mark echo. The turn is not reported
    # played during the pause; it ends when its mark comes back after the resume.
    rig = live
    await rig.queue(*speech([("Sure.", 500)]))
    await rig.advance(0.35)
    await rig.queue(PAUSE)
    await rig.advance(1.0)
    assert rig.probe.upstream(AgentHeardFrame) == []
    assert rig.call.output.ledger.heard_text(1) == ""
    await rig.queue(RESUME)
    await rig.advance(0.4)
    assert_heard_once(rig, frames=25)
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert (heard.text, heard.interrupted) == ("Sure.", False)
    assert len(rig.probe.upstream(BotStoppedSpeakingFrame)) == 1


async def test_a_wideband_leg_pauses_and_goes_on_the_same_way(wide: CallRig) -> None:
    rig = wide
    await rig.queue(*speech([(GREETING, 1000)], rate=16000))
    await rig.advance(0.5)
    before = len(rig.wire.sent)
    await rig.queue(PAUSE)
    assert sent_since(rig, before) == ["clear"]
    await rig.advance(0.4)
    await rig.queue(RESUME)
    await rig.advance(1.0)
    payloads = [p for p, _, _ in rig.playback.plays()]
    assert all(len(p) == 640 for p in payloads) and len(payloads) == 60
    assert_heard_once(rig, frames=50)
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert (heard.text, heard.interrupted) == (GREETING, False)


async def test_a_wideband_barge_in_after_a_pause_keeps_what_played(wide: CallRig) -> None:
    rig = wide
    await rig.queue(*speech([(GREETING, 1000)], rate=16000))
    await rig.advance(0.5)
    before = len(rig.wire.sent)
    await rig.queue(PAUSE)
    await rig.advance(0.5)
    await rig.queue(InterruptionFrame())
    await rig.advance(0.5)
    assert "media" not in sent_since(rig, before)
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert heard.interrupted and heard.text == "Hello, thanks for"


def test_the_ring_of_sent_items_keeps_the_items_themselves_and_only_lead_ms_of_frames() -> None:
    ledger = PlaybackLedger(ManualClock())
    out = OutboundQueue(ledger, asyncio.Event(), lead_s=0.2)
    out.open_turn()
    out.add_audio(OutputAudioRawFrame(noise(1000, 8000, seed=1), 8000, 1))
    out.add_segment_text(GREETING)
    items = list(out.items)
    for item in items:
        out.items.popleft()
        out.note_sent(item)
    media = [item for item in out.sent if item[0] == MEDIA]
    assert len(media) == 11  # 200 ms and the frame playing
    assert all(kept is sent for kept, sent in zip(out.sent, items[-len(out.sent) :], strict=True))
    assert out.sent[-1][3] == "a1.1"
    assert out.take_back(10, "1") == 10
    assert [item[3] for item in out.items][:10] == [item[3] for item in media[1:]]
    assert out.items[10][3] == "a1.1r1" and not out.sent
