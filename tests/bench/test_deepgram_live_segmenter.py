"""The live server's timing core, fed made-up detector frames: time is the audio timeline."""

from __future__ import annotations

import pytest

from bench.fakes.deepgram_live.segmenter import (
    Decode,
    Job,
    SpeechFrame,
    SpeechStarted,
    StreamOptions,
    StreamSegmenter,
    UtteranceEnd,
)

FRAME = 0.02  # the detector's frames are 32 ms; the core takes any length


class Stream:
    """A segmenter and the actions it took, driven like a caller's audio."""

    def __init__(self, **options) -> None:
        self.seg = StreamSegmenter(StreamOptions(**options))
        self.frames = 0
        self.actions: list = []

    @property
    def t(self) -> float:
        return self.frames * FRAME

    def _feed(self, seconds: float, voiced: bool) -> list:
        out = []
        for _ in range(round(seconds / FRAME)):
            out += self.seg.on_frame(SpeechFrame(self.t, self.t + FRAME, voiced))
            self.frames += 1
        self.actions += out
        return out

    def speak(self, seconds: float) -> list:
        return self._feed(seconds, True)

    def pause(self, seconds: float) -> list:
        return self._feed(seconds, False)

    def jobs(self, actions: list | None = None) -> list[Job]:
        return [
            a.job for a in (self.actions if actions is None else actions) if isinstance(a, Decode)
        ]

    def finals(self) -> list[Job]:
        return [j for j in self.jobs() if j.final]

    def complete(self, job: Job, last_word_end: float | None = None) -> list:
        """The decode finished and its result went out."""
        out = self.seg.decoded(job) + self.seg.emitted(job, last_word_end)
        self.actions += out
        return out

    def drain(self, last_word_end: float | None = None) -> None:
        """Every decode asked for finishes, in order, and its result goes out."""
        done: set[int] = set()
        while todo := [j for j in self.jobs() if j.id not in done]:
            done.add(todo[0].id)
            self.complete(todo[0], last_word_end)


def test_endpointing_silence_closes_the_window_with_speech_final():
    s = Stream(endpointing_s=0.3)
    s.speak(1.0)
    assert not s.finals()
    s.pause(0.25)
    assert not s.finals()
    s.pause(0.1)
    (final,) = s.finals()
    assert final.speech_final and not final.from_finalize and final.reason == "endpoint"
    assert final.start == 0.0 and final.end == pytest.approx(1.3)
    assert s.seg.window_start == final.end  # the next window starts where the final ended


def test_endpointing_false_never_sends_speech_final():
    s = Stream(endpointing_s=None)
    s.speak(1.0)
    s.pause(5.0)
    assert not [j for j in s.finals() if j.speech_final]


def test_an_interim_recognizes_the_window_up_to_where_its_decode_began():
    s = Stream(endpointing_s=0.3, interim_results=True)
    s.speak(0.24)
    assert not s.jobs()  # too little speech to recognize yet
    s.speak(0.02)
    (interim,) = s.jobs()
    assert not interim.final and interim.start == 0.0
    assert interim.end == pytest.approx(s.t)  # the audio position when the decode began


def test_interims_are_skipped_never_queued_while_a_decode_runs():
    s = Stream(endpointing_s=0.3, interim_results=True, interim_interval_s=0.1)
    s.speak(0.3)
    (first,) = s.jobs()
    s.speak(1.0)  # ten ticks pass while the first decode still runs
    assert s.jobs() == [first]
    assert s.seg.interims_skipped >= 9
    s.complete(first)
    after = s.speak(0.02)  # the next tick decodes the window up to now
    (second,) = s.jobs(after)
    assert second.start == 0.0 and second.end == pytest.approx(s.t)


def test_no_interim_without_new_voiced_audio_since_the_last_decode():
    s = Stream(endpointing_s=None, interim_results=True)
    s.speak(0.5)
    s.complete(s.jobs()[-1])
    last = s.jobs(s.pause(0.02))[-1]  # hears the speech that came during the first decode
    s.complete(last)
    assert last.end == pytest.approx(0.52)
    assert not s.jobs(s.pause(1.0))


def test_a_final_waits_for_the_running_decode_and_is_never_dropped():
    s = Stream(endpointing_s=0.3, interim_results=True)
    s.speak(0.4)
    (interim,) = s.jobs()
    s.pause(0.4)  # endpoint while the interim still decodes
    assert s.jobs() == [interim]
    started = s.complete(interim)
    (final,) = s.jobs(started)
    assert final.final and final.speech_final and final.start == 0.0


def test_finalize_closes_the_window_with_from_finalize():
    s = Stream(endpointing_s=0.3, interim_results=True)
    s.speak(1.0)
    s.pause(0.1)
    s.actions += s.seg.finalize()
    s.drain()
    (final,) = s.finals()
    assert final.from_finalize and not final.speech_final and final.needs_decode
    assert final.end == pytest.approx(s.t)
    s.pause(1.0)  # the endpointing silence follows, but the window was already closed
    assert len(s.finals()) == 1


def test_finalize_with_nothing_voiced_answers_an_empty_final():
    s = Stream(endpointing_s=0.3)
    s.pause(0.5)
    (empty,) = s.jobs(s.seg.finalize())
    assert empty.final and empty.from_finalize and not empty.needs_decode


def test_long_speech_is_finalized_in_pieces_at_a_pause():
    s = Stream(endpointing_s=0.3, window_soft_s=3.0, cut_pause_s=0.09)
    s.speak(3.2)
    s.pause(0.1)  # a breath, shorter than endpointing
    assert not s.finals()
    s.speak(0.02)  # the caller goes on: the window closes at the end of the breath
    (piece,) = s.finals()
    assert piece.reason == "long" and not piece.speech_final and piece.start == 0.0
    assert piece.end == pytest.approx(3.3)
    s.speak(1.0)
    s.pause(0.4)
    s.complete(piece)  # the next final is decoded after this one
    first, second = s.finals()
    assert second.start == first.end and second.speech_final


def test_a_long_utterance_ending_in_silence_is_closed_by_endpointing():
    s = Stream(endpointing_s=0.3, window_soft_s=3.0)
    s.speak(4.0)
    s.pause(0.4)
    (final,) = s.finals()
    assert final.speech_final and final.start == 0.0


def test_speech_without_a_pause_is_cut_at_the_longest_window():
    s = Stream(endpointing_s=0.3, window_max_s=6.0)
    s.speak(6.5)
    (piece,) = s.finals()
    assert piece.end - piece.start == pytest.approx(6.0, abs=FRAME)


def test_finals_tile_the_stream_including_silence():
    s = Stream(endpointing_s=0.3, interim_results=True, silence_window_s=2.0)
    for speech, quiet in [(1.0, 0.5), (0.4, 3.0), (4.0, 0.12), (0.8, 0.1), (0.3, 0.6)]:
        s.speak(speech)
        s.pause(quiet)
        s.drain()
    s.actions += s.seg.close()
    finals = s.finals()
    assert finals[0].start == 0.0
    assert all(b.start == a.end for a, b in zip(finals, finals[1:], strict=False))
    assert any(not f.needs_decode and f.reason == "silence" for f in finals)


def test_utterance_end_follows_the_gap_after_the_last_word_sent():
    s = Stream(endpointing_s=0.3, interim_results=True, utterance_end_s=1.0)
    s.speak(1.0)
    s.pause(0.4)
    s.drain(last_word_end=0.95)
    assert not [a for a in s.actions if isinstance(a, UtteranceEnd)]
    s.pause(0.54)  # heard up to 1.94: 0.99 s after the last word
    assert not [a for a in s.actions if isinstance(a, UtteranceEnd)]
    (end,) = [a for a in s.pause(0.02) if isinstance(a, UtteranceEnd)]  # 1.96 ≥ 0.95 + 1.0
    assert end.last_word_end == 0.95
    s.pause(3.0)
    assert len([a for a in s.actions if isinstance(a, UtteranceEnd)]) == 1  # once per words


def test_no_utterance_end_while_recognition_lags_the_callers_speech():
    s = Stream(endpointing_s=0.3, interim_results=True, utterance_end_s=1.0)
    s.speak(0.4)
    (interim,) = s.jobs()
    s.complete(interim, last_word_end=0.3)
    s.speak(2.0)  # still talking; the next decodes have not come back
    assert not [a for a in s.actions if isinstance(a, UtteranceEnd)]


def test_no_utterance_end_without_interim_results():
    s = Stream(endpointing_s=0.3, interim_results=False, utterance_end_s=1.0)
    s.speak(1.0)
    s.pause(0.4)
    s.drain(last_word_end=0.9)
    s.pause(2.0)
    assert not [a for a in s.actions if isinstance(a, UtteranceEnd)]


def test_speech_started_once_per_onset_after_silence():
    s = Stream(endpointing_s=0.3, vad_events=True)
    s.pause(0.5)
    s.speak(1.0)
    s.pause(0.1)  # a short gap inside speech
    s.speak(0.5)
    s.pause(1.0)
    s.speak(0.3)
    started = [a for a in s.actions if isinstance(a, SpeechStarted)]
    assert [round(a.timestamp, 3) for a in started] == [0.5, 3.1]


def test_no_speech_started_without_vad_events():
    s = Stream(endpointing_s=0.3)
    s.speak(1.0)
    assert not [a for a in s.actions if isinstance(a, SpeechStarted)]


def test_close_finalizes_what_was_voiced_then_takes_nothing_more():
    s = Stream(endpointing_s=None)
    s.speak(0.5)
    (final,) = s.jobs(s.seg.close())
    assert final.final and final.reason == "close" and not final.from_finalize
    assert s.seg.on_frame(SpeechFrame(s.t, s.t + FRAME, True)) == []
