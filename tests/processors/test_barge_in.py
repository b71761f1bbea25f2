"""BargeInGate in a real pipecat pipeline, time driven by ManualClock.

TwilioOutput's frames (BotStarted/StoppedSpeaking, AgentHeard) are sent upstream, as the sink
pushes them; the caller's VAD and transcripts come downstream from STT.
"""

from clocked_pipeline import UP, Call  # noqa: E402
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import run_test

from voiceagent.clock import ManualClock
from voiceagent.frames import AgentHeardFrame, CallerSoundFrame
from voiceagent.processors.barge_in import BargeInGate, BargeInParams


def partial(text: str) -> InterimTranscriptionFrame:
    return InterimTranscriptionFrame(text=text, user_id="caller", timestamp="")


def final(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text=text, user_id="caller", timestamp="")


def kinds(frames: list[Frame]) -> list[str]:
    return [type(f).__name__ for f in frames]


def transcripts(frames: list[Frame]) -> list[str]:
    return [
        f.text for f in frames if isinstance(f, (InterimTranscriptionFrame, TranscriptionFrame))
    ]


def interruptions(frames: list[Frame]) -> int:
    return sum(isinstance(f, InterruptionFrame) for f in frames)


async def agent_starts_speaking(call: Call) -> None:
    await call.send(BotStartedSpeakingFrame(), direction=UP)


# -- scripts ---------------------------------------------------------------------------------


async def test_barge_in_agent_silent_everything_passes_untouched():
    gate = BargeInGate(clock=ManualClock())
    frames = [VADUserStartedSpeakingFrame(), partial("uh-huh"), final("Uh-huh.")]
    await run_test(
        gate,
        frames_to_send=frames,
        expected_down_frames=[
            VADUserStartedSpeakingFrame,
            InterimTranscriptionFrame,
            TranscriptionFrame,
        ],
        expected_up_frames=[],
    )
    assert gate.stats.interruptions == 0


async def test_barge_in_decides_within_the_frame_in_a_plain_pipeline():
    """Headset settings (no echo guard, no minimum duration): 'wait stop' cuts the agent at once."""
    gate = BargeInGate(params=BargeInParams(echo_guard_s=0.0, min_speech_s=0.0))
    down, up = await run_test(
        gate,
        frames_to_send=[
            BotStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            partial("wait stop"),
        ],
        expected_down_frames=[
            BotStartedSpeakingFrame,
            VADUserStartedSpeakingFrame,
            InterruptionFrame,
            InterimTranscriptionFrame,
        ],
        expected_up_frames=[InterruptionFrame],
    )
    assert down[3].text == "wait stop"
    assert gate.stats.interruptions == 1


async def test_barge_in_caller_says_uh_huh_for_400ms_no_interruption_transcript_swallowed():
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)
        await call.advance(2.0)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.1)
        await call.send(partial("uh"))
        await call.advance(0.15)
        await call.send(partial("uh-huh"))
        await call.advance(0.15)
        await call.send(VADUserStoppedSpeakingFrame(stop_secs=0.2), final("Uh-huh."))
        await call.advance(2.0)
        await call.send(BotStoppedSpeakingFrame(), direction=UP)
        await call.advance(1.0)

    assert interruptions(call.down) == interruptions(call.up) == 0
    assert transcripts(call.down) == []
    assert kinds(call.down) == ["VADUserStartedSpeakingFrame", "VADUserStoppedSpeakingFrame"]
    assert gate.stats.backchannels_ignored == 1


async def test_barge_in_caller_says_wait_stop_interruption_broadcast_both_ways():
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)
        await call.advance(1.5)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.05)
        await call.send(partial("wait"))  # 0.2 s of speech: too short yet, held
        assert interruptions(call.down) == 0
        assert transcripts(call.down) == []
        await call.advance(0.1)  # 0.3 s of speech with a clear word: interrupt now
        assert interruptions(call.down) == interruptions(call.up) == 1
        await call.send(partial("wait, stop"))

    assert kinds(call.down) == [
        "VADUserStartedSpeakingFrame",
        "InterruptionFrame",
        "InterimTranscriptionFrame",
        "InterimTranscriptionFrame",
    ]
    assert transcripts(call.down) == ["wait", "wait, stop"]
    assert gate.stats.interruptions == 1


async def test_barge_in_the_first_sound_starts_the_speech_clock_not_the_late_vad():
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)
        await call.advance(1.5)
        # Caller: "Stop, ..." — the line turns loud at once; the VAD confirms 0.32 s later.
        await call.send(CallerSoundFrame(sounding=True))
        await call.advance(0.32)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.04)
        await call.send(partial("stop"))  # 0.36 s after the first sound: interrupt now
        assert interruptions(call.down) == 1


async def test_barge_in_an_old_sound_does_not_stretch_the_speech():
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)
        await call.send(CallerSoundFrame(sounding=True))  # a steady noise since the start
        await call.advance(1.5)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.05)
        await call.send(partial("stop"))  # only 0.2 s of speech by the VAD: too short yet
        assert interruptions(call.down) == 0
        await call.advance(0.1)
        assert interruptions(call.down) == 1


async def test_barge_in_echo_at_agent_start_is_ignored():
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)
        await call.advance(0.25)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))  # speech began at +0.1 s
        await call.advance(0.4)
        await call.send(partial("thanks for calling"))
        await call.advance(0.5)
        await call.send(VADUserStoppedSpeakingFrame(), final("Thanks for calling."))
        await call.advance(2.0)

    assert interruptions(call.down) == interruptions(call.up) == 0
    assert transcripts(call.down) == []
    assert gate.stats.echo_guarded == 1


async def test_barge_in_cough_without_words_does_not_interrupt():
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)
        await call.advance(3.0)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.5)
        await call.send(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        await call.advance(3.0)

    assert interruptions(call.down) == interruptions(call.up) == 0
    assert gate.stats.interruptions == 0


async def test_barge_in_false_interruption_resumes_unheard_text():
    """Noise the STT heard as 'stop' cuts the agent; nothing follows; the agent resumes."""
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)
        await call.advance(2.0)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.25)
        await call.send(partial("stop"))
        assert interruptions(call.up) == 1
        # TwilioOutput cleared the audio and reports what was not heard
        await call.send(
            BotStoppedSpeakingFrame(),
            AgentHeardFrame(
                turn_id=3,
                text="Your appointment is on Tuesday",
                full_text="Your appointment is on Tuesday at three in the afternoon.",
                interrupted=True,
                unheard_text="at three in the afternoon.",
            ),
            direction=UP,
        )
        await call.advance(0.2)
        # the noise ended at +2.25 s (VAD stop 0.2 s later); the final is empty
        await call.send(VADUserStoppedSpeakingFrame(stop_secs=0.2), final(""))
        await call.advance(1.25)  # +3.7 s: 1.45 s of quiet
        assert not [f for f in call.down if isinstance(f, TTSSpeakFrame)]
        await call.advance(0.05)  # 1.5 s of quiet, no words: a false interruption

    spoken = [f.text for f in call.down if isinstance(f, TTSSpeakFrame)]
    assert spoken == ["at three in the afternoon."]
    assert gate.stats.false_interruptions == 1
    assert gate.stats.resumes == 1


async def test_barge_in_real_interruption_does_not_resume():
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)
        await call.advance(2.0)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.3)
        await call.send(partial("no wait"))
        await call.send(
            BotStoppedSpeakingFrame(),
            AgentHeardFrame(turn_id=3, interrupted=True, unheard_text="at three."),
            direction=UP,
        )
        await call.advance(0.8)
        await call.send(VADUserStoppedSpeakingFrame(), final("No wait, make it Wednesday."))
        await call.advance(5.0)

    assert not [f for f in call.down if isinstance(f, TTSSpeakFrame)]
    assert transcripts(call.down) == ["no wait", "No wait, make it Wednesday."]
    assert gate.stats.resumes == 0


async def test_barge_in_yes_over_the_end_of_a_question_reaches_the_router():
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)  # "... does Tuesday work for you?"
        await call.advance(3.0)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.15)
        await call.send(partial("yes"))
        assert transcripts(call.down) == []
        await call.advance(0.1)
        await call.send(BotStoppedSpeakingFrame(), direction=UP)
        assert transcripts(call.down) == ["yes"]
        await call.send(VADUserStoppedSpeakingFrame(), final("Yes."))

    assert transcripts(call.down) == ["yes", "Yes."]
    assert interruptions(call.down) == 0


async def test_barge_in_split_by_a_comma_pause_keeps_the_first_words():
    """Caller: "So, [300 ms] can you tell me your address?" over the agent.

    Silero ends a segment at the comma; the words of that first segment must reach the router
    with the rest once the gate opens, or Whisper's later text is a fragment.
    """
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)
        await call.advance(2.0)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.3)
        await call.send(partial("So,"))
        await call.advance(0.2)
        await call.send(VADUserStoppedSpeakingFrame(stop_secs=0.2), final("So."))
        await call.advance(0.1)  # 0.3 s of real pause, then the caller goes on
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.4)
        await call.send(partial("can you tell me"))
        await call.advance(0.35)
        await call.send(partial("can you tell me your address"))

    assert interruptions(call.down) == interruptions(call.up) == 1
    said = transcripts(call.down)
    assert said.index("So.") < said.index("can you tell me your address") == len(said) - 1


async def test_barge_in_after_a_long_pause_drops_the_old_held_words():
    """A backchannel, 2 s of silence, then a real interruption: "uh-huh" is not part of it."""
    clock = ManualClock()
    gate = BargeInGate(clock=clock)
    async with Call(gate, clock) as call:
        await agent_starts_speaking(call)
        await call.advance(2.0)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.3)
        await call.send(VADUserStoppedSpeakingFrame(stop_secs=0.2), final("Uh-huh."))
        await call.advance(2.0)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.4)
        await call.send(partial("wait I have a question"))

    assert interruptions(call.down) == 1
    assert transcripts(call.down) == ["wait I have a question"]
