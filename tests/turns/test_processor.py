"""The turn processor in a real pipecat pipeline: which frames the engine's decisions become."""

from __future__ import annotations

import sys
from pathlib import Path

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    FunctionCallFromLLM,
    FunctionCallResultFrame,
    FunctionCallResultProperties,
    FunctionCallsStartedFrame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    LLMContextFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)

from voiceagent.clock import ManualClock
from voiceagent.frames import (
    AgentHeardFrame,
    AudioSpan,
    CallerSoundFrame,
    CallStartedFrame,
    ConversationUpdatedFrame,
    PlaybackPauseFrame,
    TurnCountsFrame,
    UserTurnCommittedFrame,
    set_audio_span,
)
from voiceagent.turns.processor import TurnProcessor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "processors"))
from clocked_pipeline import UP, Call  # noqa: E402


def last_user(frame: LLMContextFrame) -> str:
    return [m["content"] for m in frame.context.messages if m["role"] == "user"][-1]


def of(frames: list, kind: type) -> list:
    return [f for f in frames if isinstance(f, kind)]


async def test_the_greeting_is_spoken_when_the_call_starts():
    turns = TurnProcessor(greeting="Hello, Bright Smile Dental.", clock=ManualClock())
    async with Call(turns, turns._clock) as call:
        await call.send(CallStartedFrame(call_sid="CA1"))
        [say] = of(call.down, TTSSpeakFrame)
        assert say.text == "Hello, Bright Smile Dental." and say.append_to_context


async def test_a_caller_turn_becomes_pipecats_turn_frames_and_one_llm_request():
    clock = ManualClock()
    turns = TurnProcessor(clock=clock)
    async with Call(turns, clock) as call:
        await call.send(InputAudioRawFrame(b"\x00\x00" * 320, 16000, 1))
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(1.0)
        await call.send(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        final = TranscriptionFrame("What time do you open?", "caller", "", finalized=True)
        now = clock.now()
        set_audio_span(final, AudioSpan(now - 1.3, now))
        await call.send(final)
        await call.advance(0.35)  # 0.5 s of silence since the voice ended (min_silence_s)
        assert not of(call.down, InputAudioRawFrame)  # the caller's audio stops here
        assert of(call.down, UserStartedSpeakingFrame)
        [spec] = [f for f in of(call.down, LLMContextFrame) if f.speculation]
        assert last_user(spec) == "What time do you open?"
        [commit] = of(call.down, UserTurnCommittedFrame)
        assert commit.speculative_hit and commit.text == "What time do you open?"
        # The commit releases the held speculation: no second request.
        assert of(call.down, UserStoppedSpeakingFrame)
        assert len(of(call.down, LLMContextFrame)) == 1


def counted(frames: list) -> dict[str, int]:
    """The counters' growth reported in ``TurnCountsFrame`` s, summed."""
    totals: dict[str, int] = {}
    for frame in of(frames, TurnCountsFrame):
        assert frame.changes and all(v > 0 for v in frame.changes.values())
        for name, grown in frame.changes.items():
            totals[name] = totals.get(name, 0) + grown
    return totals


async def test_the_counters_go_downstream_as_they_grow_for_the_server_s_metrics():
    clock = ManualClock()
    turns = TurnProcessor(clock=clock)
    async with Call(turns, clock) as call:
        await call.send(BotStartedSpeakingFrame(), direction=UP)
        await call.advance(1.0)
        await call.send(CallerSoundFrame(sounding=True))
        assert counted(call.down) == {"pauses": 1}  # reported when it happened
        await call.advance(0.3)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.25)
        assert counted(call.down) == {"pauses": 1, "interruptions": 1}
        assert turns.stats.pauses == 1 and turns.stats.interruptions == 1


async def test_keypad_digits_reach_the_llm_as_a_caller_message():
    clock = ManualClock()
    turns = TurnProcessor(clock=clock)
    async with Call(turns, clock) as call:
        for key in (KeypadEntry.FOUR, KeypadEntry.TWO, KeypadEntry.POUND):
            await call.send(InputDTMFFrame(key))
        [request] = of(call.down, LLMContextFrame)
        assert last_user(request) == "The caller pressed 4 2 on the keypad."
        assert not request.speculation


async def test_a_bot_can_act_on_digits_without_the_llm():
    clock = ManualClock()
    handled: list[str] = []

    async def operator(digits: str) -> bool:
        handled.append(digits)
        return digits == "0"

    turns = TurnProcessor(clock=clock, on_keypad=operator)
    async with Call(turns, clock) as call:
        await call.send(InputDTMFFrame(KeypadEntry.ZERO))
        await call.advance(2.1)  # the inter-digit timeout ends the entry
        assert handled == ["0"] and not of(call.down, LLMContextFrame)
        await call.send(InputDTMFFrame(KeypadEntry.ONE))
        await call.advance(2.1)
        assert handled == ["0", "1"]
        [request] = of(call.down, LLMContextFrame)
        assert last_user(request) == "The caller pressed 1 on the keypad."


async def test_sustained_speech_over_the_agent_pauses_it_then_interrupts_both_ways():
    clock = ManualClock()
    turns = TurnProcessor(clock=clock)
    async with Call(turns, clock) as call:
        await call.send(BotStartedSpeakingFrame(), direction=UP)
        await call.advance(1.0)
        await call.send(CallerSoundFrame(sounding=True))
        assert of(call.down, PlaybackPauseFrame)
        await call.advance(0.3)
        await call.send(VADUserStartedSpeakingFrame(start_secs=0.15))
        await call.advance(0.25)
        assert of(call.down, InterruptionFrame) and of(call.up, InterruptionFrame)


async def test_tool_results_join_the_conversation_and_are_answered_once():
    clock = ManualClock()
    turns = TurnProcessor(clock=clock)
    calls = [
        FunctionCallFromLLM("check_availability", "t1", {"day": "tuesday"}, None),
        FunctionCallFromLLM("check_availability", "t2", {"day": "friday"}, None),
    ]
    async with Call(turns, clock) as call:
        await call.send(FunctionCallsStartedFrame(function_calls=calls), direction=UP)
        await call.send(result("t1", {"open": ["2 pm"]}), direction=UP)
        assert not of(call.down, LLMContextFrame)  # waits for the second result
        await call.send(result("t2", {"open": []}), direction=UP)
        [request] = of(call.down, LLMContextFrame)
        tool_messages = [m for m in request.context.messages if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in tool_messages] == ["t1", "t2"]


async def test_a_result_after_a_barge_in_joins_the_conversation_silently():
    clock = ManualClock()
    turns = TurnProcessor(clock=clock)
    booking = [FunctionCallFromLLM("book_appointment", "b1", {"day": "tuesday"}, None)]
    async with Call(turns, clock) as call:
        await call.send(FunctionCallsStartedFrame(function_calls=booking), direction=UP)
        await call.send(BotStartedSpeakingFrame(), direction=UP)
        await call.send(InputDTMFFrame(KeypadEntry.STAR))  # the caller interrupts
        await call.send(result("b1", {"booked": True}), direction=UP)
        assert not of(call.down, LLMContextFrame)
        assert any(m["role"] == "tool" for m in turns.conversation.messages)


async def test_a_result_without_run_llm_is_kept_but_not_answered():
    clock = ManualClock()
    turns = TurnProcessor(clock=clock)
    end = [FunctionCallFromLLM("end_call", "e1", {}, None)]
    async with Call(turns, clock) as call:
        await call.send(FunctionCallsStartedFrame(function_calls=end), direction=UP)
        await call.send(result("e1", {"ok": True}, run_llm=False), direction=UP)
        assert not of(call.down, LLMContextFrame)
        assert any(m["role"] == "tool" for m in turns.conversation.messages)


def result(call_id: str, value: dict, *, run_llm: bool | None = None) -> FunctionCallResultFrame:
    properties = FunctionCallResultProperties(run_llm=run_llm) if run_llm is not None else None
    return FunctionCallResultFrame(
        function_name="tool",
        tool_call_id=call_id,
        arguments={},
        result=value,
        run_llm=None,
        properties=properties,
    )


async def test_what_the_caller_heard_counts_from_either_side_of_the_turn_engine():
    """TwilioOutput reports heard agent turns upstream; a pipecat transport's serializer reports
    them downstream from the transport's input. The conversation keeps the heard text either way,
    and only that."""
    clock = ManualClock()
    turns = TurnProcessor(greeting="Hello, Harbor Bikes. We fix bikes.", clock=clock)
    async with Call(turns, clock) as call:
        await call.send(CallStartedFrame(call_sid="CA1"))
        await call.send(
            AgentHeardFrame(
                turn_id=1,
                text="Hello, Harbor Bikes.",
                full_text="Hello, Harbor Bikes. We fix bikes.",
                interrupted=True,
                unheard_text="We fix bikes.",
            )
        )
        await call.send(AgentHeardFrame(turn_id=2, text="Sure, it is ready."), direction=UP)
        [said] = [m["content"] for m in turns.conversation.messages if m["role"] == "assistant"]
        assert said.startswith("Hello, Harbor Bikes.") and "We fix" not in said
        assert said.endswith(" Sure, it is ready.")  # back-to-back agent turns read as one
        assert len(of(call.down, ConversationUpdatedFrame)) == 2
