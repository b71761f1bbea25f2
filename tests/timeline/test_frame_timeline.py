"""Which frames become timeline events, and how: the observer's pure half."""

from __future__ import annotations

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    AggregatedTextFrame,
    ErrorFrame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.utils.time import time_now_iso8601

from voiceagent.frames import (
    CallerSoundFrame,
    PlaybackMarkFrame,
    PlaybackPauseFrame,
    ProviderSwitchedFrame,
    TurnDecisionFrame,
)
from voiceagent.timeline.observer import FrameTimeline

UP = FrameDirection.UPSTREAM


def test_the_callers_voice_is_timed_when_it_began_and_ended_not_when_the_vad_was_sure():
    frames = FrameTimeline()
    start = frames.event(VADUserStartedSpeakingFrame(start_secs=0.2))
    stop = frames.event(VADUserStoppedSpeakingFrame(stop_secs=0.3))
    sound = frames.event(CallerSoundFrame(sounding=True, since_s=0.04))
    assert (start.kind, start.back_s) == ("speech_start", 0.2)
    assert (stop.kind, stop.back_s) == ("speech_end", 0.3)
    assert (sound.kind, sound.data, sound.back_s) == ("sound", {"sounding": True}, 0.04)
    # pipecat broadcasts the VAD's frames both ways: the upstream copy is not a second event
    assert frames.event(VADUserStartedSpeakingFrame(start_secs=0.2), UP) is None


def test_partials_finals_and_keypad_digits_carry_their_words():
    frames = FrameTimeline()
    partial = frames.event(InterimTranscriptionFrame("what time", "caller", time_now_iso8601()))
    final = frames.event(TranscriptionFrame("What time?", "caller", time_now_iso8601()))
    digit = frames.event(InputDTMFFrame(KeypadEntry.POUND))
    assert (partial.kind, partial.text) == ("partial", "what time")
    assert (final.kind, final.text) == ("final", "What time?")
    assert (digit.kind, digit.text) == ("dtmf", "#")
    assert frames.event(InterimTranscriptionFrame("", "caller", time_now_iso8601())) is None


def test_a_reply_is_timed_at_its_first_token_chunk_and_audio_only():
    frames = FrameTimeline()
    context = LLMContext(messages=[{"role": "user", "content": "Are you open on Friday?"}])
    speculation = frames.event(LLMContextFrame(context=context, speculation=True))
    assert (speculation.kind, speculation.text) == ("speculate", "Are you open on Friday?")
    assert frames.event(LLMFullResponseStartFrame()) is None
    first = frames.event(LLMTextFrame("Sure"))
    assert (first.kind, first.text) == ("llm_first_token", "Sure")
    assert frames.event(LLMTextFrame(",")) is None  # later tokens are not events
    chunk = frames.event(AggregatedTextFrame("Sure, until 3 pm.", "sentence"))
    assert (chunk.kind, chunk.text) == ("chunk", "Sure, until 3 pm.")
    assert frames.event(TTSStartedFrame()) is None
    audio = TTSAudioRawFrame(b"\x00\x00" * 320, 16000, 1)
    assert frames.event(audio).kind == "tts_audio"
    assert frames.event(TTSAudioRawFrame(b"\x00\x00" * 320, 16000, 1)) is None
    # what the TTS says it spoke is not a new chunk; caller audio is no event at all
    assert frames.event(TTSTextFrame("Sure, until 3 pm.", "sentence")) is None
    assert frames.event(InputAudioRawFrame(b"\x00\x00" * 320, 16000, 1)) is None
    request = frames.event(LLMContextFrame(context=context))
    assert request.kind == "llm_request"
    assert frames.event(LLMTextFrame("Yes")).kind == "llm_first_token"
    fixed = frames.event(TTSSpeakFrame("Hello!"))
    assert (fixed.kind, fixed.text, fixed.data) == ("chunk", "Hello!", {"fixed": True})


def test_decisions_pauses_marks_and_errors():
    frames = FrameTimeline()
    barge = frames.event(TurnDecisionFrame(kind="barge_in", reason="words"))
    assert (barge.kind, barge.data) == ("decision", {"kind": "barge_in", "reason": "words"})
    pause = frames.event(PlaybackPauseFrame(reason="caller_sound"))
    assert (pause.kind, pause.data) == ("pause", {"reason": "caller_sound"})
    mark = frames.event(PlaybackMarkFrame(mark_name="a2.1"))
    assert (mark.kind, mark.text) == ("mark_echo", "a2.1")
    switch = ProviderSwitchedFrame(stage="stt", failed="deepgram", serving="whisper")
    assert frames.event(switch) is None  # the recorder keeps it (as a ``provider`` event)
    error = frames.event(ErrorFrame("TTS socket lost"), UP)
    assert (error.kind, error.text, error.data) == ("error", "TTS socket lost", {"fatal": False})
