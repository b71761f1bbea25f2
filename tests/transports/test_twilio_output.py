"""Pipeline → Twilio: the agent speaks, Twilio plays and echoes marks, the caller barges in."""

from __future__ import annotations

import asyncio
import base64

import pytest
from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.workers.runner import WorkerRunner

from voiceagent.frames import AgentHeardFrame, PlaybackPauseFrame, PlaybackResumeFrame
from voiceagent.transports.twilio.call import TwilioCall

from .conftest import CallRig, Probe, TwilioScript, Wire, speech, tone_pcm

GREETING = "Hello, thanks for calling Bright Smile Dental."
QUESTION = "How can I help you today?"


def media_before(rig: CallRig, mark: str) -> int:
    count = 0
    for message in rig.wire.sent:
        if message["event"] == "mark" and message["mark"]["name"] == mark:
            return count
        count += message["event"] == "media"
    raise AssertionError(f"mark {mark} never sent")


async def test_agent_greets_and_twilio_plays_it_to_the_end(live: CallRig) -> None:
    rig = live
    await rig.queue(*speech([(GREETING, 1000), (QUESTION, 600)]))
    # The first 200 ms go out at once, the rest at real time.
    assert rig.wire.events() == ["media"] * 10
    assert rig.probe.upstream(BotStartedSpeakingFrame) and rig.tail.downstream(
        BotStartedSpeakingFrame
    )
    await rig.advance(1.2)
    assert rig.probe.upstream(BotStoppedSpeakingFrame) == []  # the question is still playing
    await rig.advance(0.8)

    payloads = [base64.b64decode(m["media"]["payload"]) for m in rig.wire.sent if "media" in m]
    assert all(len(p) == 160 for p in payloads)  # exact 20 ms frames
    assert abs(len(payloads) - 80) <= 1  # 1.6 s of speech
    assert rig.wire.marks()[:2] == ["a1.1", "a1.2"]
    # The greeting's mark follows all of its 1.0 s (50 frames): never early, ≤ 20 ms late.
    assert media_before(rig, "a1.1") in (50, 51)
    assert rig.wire.sent[-1]["event"] == "mark"  # the turn ends with a mark

    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert heard.turn_id == 1 and not heard.interrupted
    assert heard.text == heard.full_text == f"{GREETING} {QUESTION}"
    assert heard.unheard_text == ""
    up = [f for f in rig.probe.up if isinstance(f, (AgentHeardFrame, BotStoppedSpeakingFrame))]
    assert [type(f) for f in up] == [AgentHeardFrame, BotStoppedSpeakingFrame]
    assert len(rig.tail.downstream(BotStoppedSpeakingFrame)) == 1
    assert rig.call.frames_out == len(payloads)


async def test_twilio_never_holds_more_than_200ms_of_agent_audio(live: CallRig) -> None:
    rig = live
    await rig.queue(*speech([(GREETING, 2000)]))
    await rig.advance(2.5)
    media_times = [t for m, t in zip(rig.wire.sent, rig.wire.times, strict=True) if "media" in m]
    first = media_times[0]
    for sent, at in enumerate(media_times, start=1):
        assert sent * 0.02 <= (at - first) + 0.2 + 1e-6
    # ...and it keeps up with real time: the last frame left 0.2 s before play-out ended.
    assert media_times[-1] - first == pytest.approx(len(media_times) * 0.02 - 0.2, abs=0.02)


async def test_caller_barges_in_mid_question(live: CallRig) -> None:
    rig = live
    await rig.queue(*speech([(GREETING, 1000), (QUESTION, 600)]))
    await rig.advance(1.3)  # the greeting played (a1.1 echoed), 0.3 s of the question too
    assert rig.playback.echoed == {"a1.1"}
    sent_before = len(rig.wire.sent)

    await rig.queue(InterruptionFrame())
    after = rig.wire.sent[sent_before:]
    assert [m["event"] for m in after] == ["clear"]  # clear first, and nothing else
    assert after[0] == {"event": "clear", "streamSid": "MZ0001"}
    # Twilio flushes and echoes every outstanding mark: they must not count as heard.
    await rig.echo(*[name for name in rig.wire.marks() if name not in rig.playback.echoed])
    await rig.advance(1.0)
    assert [m["event"] for m in rig.wire.sent[sent_before:]] == ["clear"]  # no media after it

    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert heard.interrupted
    assert heard.text == f"{GREETING} How can I"
    assert heard.unheard_text == "help you today?"
    assert heard.full_text == f"{GREETING} {QUESTION}"
    assert len(rig.probe.upstream(BotStoppedSpeakingFrame)) == 1
    assert len(rig.tail.downstream(BotStoppedSpeakingFrame)) == 1

    # The agent answers the barge-in: fresh audio flows again, as turn 2.
    await rig.queue(*speech([("Sure.", 400)]))
    await rig.advance(1.0)
    resumed = rig.wire.sent[sent_before + 1 :]
    assert abs(sum(m["event"] == "media" for m in resumed) - 20) <= 1
    assert [m["mark"]["name"] for m in resumed if m["event"] == "mark"][0] == "a2.1"
    heard2 = rig.probe.upstream(AgentHeardFrame)[1]
    assert (heard2.turn_id, heard2.text, heard2.interrupted) == (2, "Sure.", False)
    assert len(rig.probe.upstream(BotStartedSpeakingFrame)) == 2


async def test_interruption_while_tts_is_still_streaming(live: CallRig) -> None:
    rig = live
    # TTS has produced 1 s but not finished the turn (no TTSStoppedFrame yet).
    await rig.queue(*speech([(GREETING, 1000)], stopped=False))
    await rig.advance(0.1)
    sent_before = len(rig.wire.sent)
    await rig.queue(InterruptionFrame())
    await rig.queue(*speech([("late audio", 300)], started=False, stopped=False))
    assert rig.wire.sent[sent_before]["event"] == "clear"
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert heard.interrupted and heard.text == "" and heard.unheard_text == GREETING


async def test_no_clear_when_the_agent_is_already_silent(live: CallRig) -> None:
    rig = live
    await rig.queue(*speech([("Goodbye.", 300)]))
    await rig.advance(1.0)
    assert rig.probe.upstream(BotStoppedSpeakingFrame)
    await rig.queue(InterruptionFrame())
    assert "clear" not in rig.wire.events()


async def test_audio_without_tts_started_still_makes_a_turn(live: CallRig) -> None:
    rig = live
    await rig.queue(*speech([("Hi.", 300)], started=False, stopped=False))
    assert rig.probe.upstream(BotStartedSpeakingFrame)
    await rig.queue(TTSStoppedFrame())
    await rig.advance(1.0)
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert (heard.turn_id, heard.text) == (1, "Hi.")


async def test_without_mark_echoes_the_turn_ends_by_estimate(live: CallRig) -> None:
    rig = live
    rig.echo_marks = False
    await rig.queue(*speech([("One moment please.", 400)]))
    await rig.advance(0.8)  # play-out ended at 0.4 s; the 0.5 s safety has not passed
    assert rig.probe.upstream(BotStoppedSpeakingFrame) == []
    await rig.advance(0.2)
    assert len(rig.probe.upstream(BotStoppedSpeakingFrame)) == 1
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert heard.text == "One moment please." and not heard.interrupted


async def test_odd_sized_16khz_chunks_become_exact_20ms_frames(live: CallRig) -> None:
    rig = live
    pcm = tone_pcm(1000, 16000)
    frames = [TTSAudioRawFrame(pcm[i : i + 666], 16000, 1) for i in range(0, len(pcm), 666)]
    await rig.queue(TTSStartedFrame(), *frames, TTSTextFrame("Ok.", "sentence"), TTSStoppedFrame())
    await rig.advance(1.5)
    payloads = [base64.b64decode(m["media"]["payload"]) for m in rig.wire.sent if "media" in m]
    assert all(len(p) == 160 for p in payloads)
    assert abs(len(payloads) - 50) <= 1


async def test_goodbye_plays_out_before_the_pipeline_ends(live: CallRig) -> None:
    rig = live
    await rig.queue(*speech([("Thanks for calling, goodbye.", 600)]))
    await rig.worker.queue_frame(EndFrame())
    await rig.advance(1.5)
    await rig.finished()
    assert abs(rig.wire.media_count() - 30) <= 1
    assert rig.probe.upstream(AgentHeardFrame)[0].text == "Thanks for calling, goodbye."


async def test_a_dead_socket_stops_output_quietly(live: CallRig) -> None:
    rig = live
    lines: list[str] = []
    handler = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        await rig.queue(*speech([(GREETING, 1000)]))
        rig.wire.fail = True
        await rig.advance(1.0)
        await rig.queue(*speech([(QUESTION, 500)]))
        await rig.queue(InterruptionFrame())
    finally:
        logger.remove(handler)
    assert rig.call.frames_out == 10  # only the burst before the socket died
    assert sum("sending to Twilio failed" in line for line in lines) == 1


async def test_audio_before_twilio_start_waits_for_the_stream(rig: CallRig) -> None:
    await rig.queue(*speech([("Hello?", 200)]))
    assert rig.wire.sent == []
    await rig.feed(rig.twilio.start())
    assert rig.wire.events()[:10] == ["media"] * 10
    assert all(m["streamSid"] == "MZ0001" for m in rig.wire.sent)


async def test_word_by_word_marks_follow_each_words_audio(live: CallRig) -> None:
    # A TTS with word timestamps: one TTSTextFrame per word, right after its audio.
    rig = live
    words = [("Hi", 200), ("there,", 260), ("friend.", 300)]
    await rig.queue(*speech(words))
    await rig.advance(1.5)
    assert rig.wire.marks()[:3] == ["a1.1", "a1.2", "a1.3"]
    for mark, frames in (("a1.1", 10), ("a1.2", 23), ("a1.3", 38)):
        assert media_before(rig, mark) in (frames, frames + 1)
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert heard.text == "Hi there, friend."


async def test_a_late_next_chunk_leaves_the_first_whole_and_marked(live: CallRig) -> None:
    # "Sure," is synthesized at once; the LLM's next clause comes 0.5 s later.
    rig = live
    await rig.queue(*speech([("Sure,", 300)], stopped=False))
    await rig.advance(0.5)
    assert rig.wire.events()[-1] == "mark"  # all of "Sure," went out, then its mark
    assert media_before(rig, "a1.1") in (15, 16)
    await rig.queue(*speech([("I can help with that.", 600)], started=False))
    await rig.advance(1.0)
    assert rig.wire.marks()[:2] == ["a1.1", "a1.2"]
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert heard.text == "Sure, I can help with that."


async def test_pipeline_cancelled_while_the_agent_speaks(live: CallRig) -> None:
    rig = live
    await rig.queue(*speech([(GREETING, 1000)]))
    await rig.advance(0.2)
    sent = len(rig.wire.sent)
    await rig.worker.cancel()
    await rig.finished()
    await rig.advance(1.0)
    assert len(rig.wire.sent) == sent  # nothing more goes out


async def test_real_clock_smoke() -> None:
    # The production clock path (loop timers instead of ManualClock), on a short phrase.
    wire = Wire()
    call = TwilioCall(wire.send)
    probe = Probe()
    worker = PipelineWorker(
        Pipeline([call.serializer, call.output, probe]), cancel_on_idle_timeout=False
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    try:
        await call.feed_text(TwilioScript().start())
        await worker.queue_frames(speech([("Ok.", 300)]))
        await asyncio.wait_for(_until(lambda: wire.media_count() >= 15 and wire.marks()), 5)
        await call.feed_text(TwilioScript().mark(wire.marks()[-1]))
        await asyncio.wait_for(_until(lambda: probe.downstream(BotStoppedSpeakingFrame)), 5)
        await call.feed_text(TwilioScript().stop())
        await asyncio.wait_for(run, 5)
    finally:
        if not run.done():
            await worker.cancel()
    assert all(m["streamSid"] == "MZ0001" for m in wire.sent)


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)


async def test_a_pause_stops_the_agents_audio_and_the_heard_share_counts_only_what_played(
    live: CallRig,
) -> None:
    # The caller coughs 0.5 s into the question; the engine pauses the agent for 0.8 s.
    rig = live
    await rig.queue(*speech([(GREETING, 1000), (QUESTION, 1500)]))
    await rig.advance(1.5)
    await rig.queue(PlaybackPauseFrame(reason="caller_sound"))
    sent = rig.wire.media_count()
    await rig.advance(0.8)
    assert rig.wire.media_count() == sent  # nothing more went out while paused
    await rig.queue(InterruptionFrame())  # the cough was a barge-in after all
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    # The pause cleared what Twilio held (200 ms): the caller heard 0.5 s of the 1.5 s
    # question (33 %), not the 1.3 s (87 %) that passed since it started.
    assert heard.text == f"{GREETING} How can"


async def test_a_resume_sends_the_rest_of_the_turn(live: CallRig) -> None:
    rig = live
    await rig.queue(*speech([(GREETING, 1000)]))
    await rig.advance(0.4)
    await rig.queue(PlaybackPauseFrame(reason="caller_sound"))
    sent = rig.wire.media_count()
    await rig.advance(0.5)
    assert rig.wire.media_count() == sent
    await rig.queue(PlaybackResumeFrame(reason="caller_quiet"))
    await rig.advance(1.2)
    # All of the greeting, none lost: the 200 ms Twilio held at the pause was cleared and went
    # again (tests/transports/test_soft_clear.py checks the bytes).
    assert rig.wire.media_count() == 50 + 10
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert heard.text == GREETING and not heard.interrupted


async def test_a_tts_that_sends_its_text_before_its_audio_still_gets_clause_marks(
    live: CallRig,
) -> None:
    # A WebSocket TTS without word timestamps: both clauses' text arrive first, then 3 s of
    # audio. The caller barges in 2.2 s in: the first clause was heard, not "(nothing)".
    rig = live
    first, second = "Sure, I can help with that.", "Let me check the calendar for you."
    pcm = tone_pcm(3000, 24000, freq=220)
    step = 24000 * 40 // 1000 * 2
    audio = [TTSAudioRawFrame(pcm[i : i + step], 24000, 1) for i in range(0, len(pcm), step)]
    await rig.queue(
        TTSStartedFrame(), TTSTextFrame(first, "sentence"), TTSTextFrame(second, "sentence")
    )
    await rig.queue(*audio, TTSStoppedFrame())
    await rig.advance(2.2)
    assert rig.wire.marks() == ["a1.1"]  # the first clause's mark, mid-reply
    assert rig.playback.echoed == {"a1.1"}  # and it came back: the caller heard it
    await rig.queue(InterruptionFrame())
    (heard,) = rig.probe.upstream(AgentHeardFrame)
    assert heard.text.startswith(first) and heard.interrupted
    assert heard.unheard_text
