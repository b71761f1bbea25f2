"""Twilio's playback buffer as the caller hears it, on a manual clock."""

import pytest
from emulator_fakes import tone_pcm8k, window_rms

from voiceagent.clock import ManualClock
from voiceagent.emulator.audio import ulaw_encode
from voiceagent.emulator.playback import PlaybackTimeline


def seconds_of_tone(seconds: float) -> bytes:
    return ulaw_encode(tone_pcm8k(seconds))


@pytest.fixture
def call():
    clock = ManualClock()
    echoed: list[tuple[float, str]] = []
    events: list[tuple[str, dict]] = []
    timeline = PlaybackTimeline(
        clock,
        on_mark=lambda name: echoed.append((round(timeline.now_s(), 4), name)),
        on_event=lambda kind, data: events.append((kind, data)),
    )
    timeline.start()
    return clock, timeline, echoed, events


def test_agent_audio_arriving_on_an_empty_line_plays_at_once_and_ends_on_time(call):
    clock, timeline, _, events = call
    clock.advance(1.0)
    timeline.receive_media(seconds_of_tone(0.5))
    assert events == [("agent_audio_start", {"t": 1.0})]
    clock.advance(0.2)
    assert timeline.agent_state().playing
    clock.advance(0.31)
    state = timeline.agent_state()
    assert not state.playing and state.last_audio_s == pytest.approx(1.5)
    clock.advance(1.0)
    assert events[-1] == ("agent_audio_end", {"t": 1.5, "duration_s": 0.5})
    heard = timeline.finish()
    assert len(heard) == 2 * round(2.51 * 8000)
    assert window_rms(heard, 0.0, 1.0) == 0.0
    assert window_rms(heard, 1.0, 1.5) > 4000
    assert window_rms(heard, 1.5, 2.5) == 0.0


def test_audio_sent_faster_than_real_time_queues_behind_what_is_playing(call):
    clock, timeline, _, events = call
    timeline.receive_media(seconds_of_tone(0.5))
    clock.advance(0.1)
    timeline.receive_media(seconds_of_tone(0.5))
    clock.advance(0.85)
    assert timeline.agent_state().playing  # 1.0 s of audio, 0.95 s elapsed
    clock.advance(0.1)
    assert not timeline.agent_state().playing
    assert timeline.played_s_between(0.0) == pytest.approx(1.0)
    assert [kind for kind, _ in events] == ["agent_audio_start"]


def test_mark_is_echoed_when_playback_passes_it_not_when_it_arrives(call):
    clock, timeline, echoed, _ = call
    timeline.receive_media(seconds_of_tone(0.5))
    timeline.receive_mark("after-hello")
    clock.advance(0.49)
    assert echoed == [] and timeline.outstanding_marks == ["after-hello"]
    clock.advance(0.01)
    assert echoed == [(0.5, "after-hello")]
    assert timeline.marks_released == 1


def test_mark_on_an_empty_buffer_is_echoed_immediately(call):
    clock, timeline, echoed, _ = call
    clock.advance(0.3)
    timeline.receive_mark("nothing-queued")
    assert echoed == [(0.3, "nothing-queued")]


def test_marks_between_chunks_echo_in_order_at_their_own_positions(call):
    clock, timeline, echoed, _ = call
    for name in ("a", "b", "c"):
        timeline.receive_media(seconds_of_tone(0.25))
        timeline.receive_mark(name)
    clock.advance(1.0)
    assert echoed == [(0.25, "a"), (0.5, "b"), (0.75, "c")]


def test_clear_drops_unplayed_audio_and_echoes_all_outstanding_marks_at_once(call):
    clock, timeline, echoed, events = call
    timeline.receive_media(seconds_of_tone(1.0))
    timeline.receive_mark("first-second")
    timeline.receive_media(seconds_of_tone(1.0))
    timeline.receive_mark("second-second")
    clock.advance(0.6)
    assert timeline.clear() == ["first-second", "second-second"]
    assert echoed == [(0.6, "first-second"), (0.6, "second-second")]
    clear = next(data for kind, data in events if kind == "clear")
    assert clear["discarded_s"] == pytest.approx(1.4)
    state = timeline.agent_state()
    assert not state.playing and state.last_clear_s == pytest.approx(0.6)
    assert state.last_audio_s == state.last_clear_s  # what played ended at the clear
    clock.advance(1.0)
    heard = timeline.finish()
    assert window_rms(heard, 0.0, 0.6) > 4000
    assert window_rms(heard, 0.6, 1.6) == 0.0
    assert timeline.clears == 1 and timeline.outstanding_marks == []


def test_new_reply_after_clear_starts_playing_at_once(call):
    clock, timeline, _, _ = call
    timeline.receive_media(seconds_of_tone(2.0))
    clock.advance(0.5)
    timeline.clear()
    clock.advance(0.5)
    timeline.receive_media(seconds_of_tone(0.3))
    clock.advance(0.5)
    assert timeline.utterance_starts_s() == [0.0, 1.0]
    assert timeline.played_s_between(0.0) == pytest.approx(0.8)


def test_short_underrun_is_a_glitch_inside_one_utterance_long_gap_is_a_new_one(call):
    clock, timeline, _, events = call
    timeline.receive_media(seconds_of_tone(0.1))
    clock.advance(0.15)  # agent audio arrived 50 ms late: audible gap
    timeline.receive_media(seconds_of_tone(0.1))
    clock.advance(1.0)
    timeline.receive_media(seconds_of_tone(0.1))
    clock.advance(1.0)
    assert timeline.glitches == 1
    assert timeline.utterance_starts_s() == [0.0, 1.15]
    assert [kind for kind, _ in events] == [
        "agent_audio_start",
        "agent_audio_end",
        "agent_audio_start",
        "agent_audio_end",
    ]
    assert timeline.played_s_between(0.0, 1.0) == pytest.approx(0.2)


def test_a_short_gap_at_a_segment_mark_is_a_pause_not_a_glitch(call):
    clock, timeline, _, _ = call
    timeline.receive_media(seconds_of_tone(0.3))  # "Sure,"
    timeline.receive_mark("seg-1")
    clock.advance(0.45)  # the next clause arrives 150 ms after "Sure," played out
    timeline.receive_media(seconds_of_tone(0.5))
    clock.advance(0.2)
    timeline.receive_media(seconds_of_tone(0.1))  # same segment, no mark: in time, no gap
    clock.advance(1.0)
    assert (timeline.pauses, timeline.glitches) == (1, 0)
    assert len(timeline.utterance_starts_s()) == 1


def test_audio_going_on_soon_after_a_clear_is_no_glitch(call):
    # A soft clear: the agent stops at the caller's "uh-huh" and goes on 0.2 s later.
    clock, timeline, _, _ = call
    timeline.receive_media(seconds_of_tone(0.5))
    clock.advance(0.3)
    timeline.clear()
    clock.advance(0.2)
    timeline.receive_media(seconds_of_tone(0.2))
    clock.advance(1.0)
    assert (timeline.pauses, timeline.glitches, timeline.clears) == (0, 0, 1)
    assert timeline.played_s_between(0.0) == pytest.approx(0.5)
    assert len(timeline.utterance_starts_s()) == 1


def test_audio_still_queued_at_hang_up_is_never_heard(call):
    clock, timeline, echoed, _ = call
    timeline.receive_media(seconds_of_tone(3.0))
    timeline.receive_mark("end")
    clock.advance(1.0)
    heard = timeline.finish()
    assert len(heard) == 2 * 8000
    clock.advance(5.0)
    assert echoed == []
