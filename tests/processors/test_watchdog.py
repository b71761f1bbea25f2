"""SilenceWatchdog in a real pipecat pipeline, time driven by ManualClock.

The watchdog sits after the router: committed turns and the caller's VAD come downstream,
TwilioOutput's BotStarted/StoppedSpeaking come upstream; its actions go downstream to the LLM/TTS.
"""

from clocked_pipeline import UP, Call  # noqa: E402
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)

from voiceagent.clock import ManualClock
from voiceagent.frames import CallEndedFrame, UserTurnCommittedFrame
from voiceagent.processors.agent_context import CallContext
from voiceagent.processors.watchdog import SilenceWatchdog, WatchdogParams

FALLBACK = "Sorry, I didn't catch that\u2014could you say it again?"


def spoken(frames: list[Frame]) -> list[str]:
    return [f.text for f in frames if isinstance(f, TTSSpeakFrame)]


def llm_requests(frames: list[Frame]) -> list[LLMContextFrame]:
    return [f for f in frames if isinstance(f, LLMContextFrame)]


def interruptions(frames: list[Frame]) -> int:
    return sum(isinstance(f, InterruptionFrame) for f in frames)


def call_with_turn() -> tuple[ManualClock, CallContext, SilenceWatchdog]:
    clock = ManualClock()
    context = CallContext("You are a dental receptionist.")
    context.add_agent_heard("Hello, how can I help?")
    context.add_user("I'd like to book a cleaning.")  # what the router does at commit
    return clock, context, SilenceWatchdog(context, clock=clock)


async def agent_says_something(call: Call, seconds: float = 2.0) -> None:
    await call.send(BotStartedSpeakingFrame(), direction=UP)
    await call.advance(seconds)
    await call.send(BotStoppedSpeakingFrame(), direction=UP)


async def caller_speaks(call: Call, seconds: float = 1.0) -> None:
    await call.send(VADUserStartedSpeakingFrame())
    await call.advance(seconds)
    await call.send(VADUserStoppedSpeakingFrame())


# -- reply timeout ---------------------------------------------------------------------------


async def test_watchdog_no_reply_reruns_llm_once_then_speaks_fallback():
    clock, context, watchdog = call_with_turn()
    async with Call(watchdog, clock) as call:
        await call.send(UserTurnCommittedFrame(turn_id=1, text="I'd like to book a cleaning."))
        await call.advance(5.9)
        assert llm_requests(call.down) == []
        await call.advance(0.1)  # 6 s, the LLM never answered: cancel it and ask again
        requests = llm_requests(call.down)
        assert len(requests) == 1
        assert requests[0].context.messages[-1] == {
            "role": "user",
            "content": "I'd like to book a cleaning.",
        }
        assert interruptions(call.down) == 1
        assert spoken(call.down) == []
        await call.advance(6.0)  # the re-run failed too: say something
        assert spoken(call.down) == [FALLBACK]
        await call.advance(30.0)  # nothing more: the agent never spoke, nothing to re-prompt

    assert len(llm_requests(call.down)) == 1
    assert spoken(call.down) == [FALLBACK]
    assert interruptions(call.up) == 0  # the cancel only goes down, not to the caller side
    assert (watchdog.stats.reruns, watchdog.stats.fallbacks) == (1, 1)


async def test_watchdog_reply_in_time_means_nothing_to_do():
    clock, _, watchdog = call_with_turn()
    async with Call(watchdog, clock) as call:
        await call.send(UserTurnCommittedFrame(turn_id=1, text="I'd like to book a cleaning."))
        await call.advance(1.2)
        await call.send(BotStartedSpeakingFrame(), direction=UP)
        await call.advance(7.0)

    assert llm_requests(call.down) == []
    assert spoken(call.down) == []
    assert interruptions(call.down) == 0


async def test_watchdog_waits_while_the_caller_keeps_talking():
    clock, _, watchdog = call_with_turn()
    async with Call(watchdog, clock) as call:
        await call.send(UserTurnCommittedFrame(turn_id=1, text="I'd like to book a cleaning."))
        await call.advance(1.0)
        await caller_speaks(call, 8.0)  # "...and my son too, he's seven"
        assert llm_requests(call.down) == []
        await call.advance(5.9)  # the reply clock restarts when the caller stops
        assert llm_requests(call.down) == []
        await call.advance(0.1)

    assert len(llm_requests(call.down)) == 1


async def test_watchdog_llm_error_shortens_the_wait():
    clock, _, watchdog = call_with_turn()
    async with Call(watchdog, clock) as call:
        await call.send(UserTurnCommittedFrame(turn_id=1, text="I'd like to book a cleaning."))
        await call.advance(1.0)
        await call.send(ErrorFrame(error="LLM connection reset"), direction=UP)
        await call.advance(0.4)
        assert llm_requests(call.down) == []
        await call.advance(0.1)  # error_grace_s after the error

    assert len(llm_requests(call.down)) == 1


# -- idle re-prompt --------------------------------------------------------------------------


async def test_watchdog_idle_caller_is_reprompted_at_most_twice():
    clock, _, watchdog = call_with_turn()
    async with Call(watchdog, clock) as call:
        await agent_says_something(call)  # "Which day suits you?"
        await call.advance(9.9)
        assert spoken(call.down) == []
        await call.advance(0.1)
        assert spoken(call.down) == ["Are you still there?"]
        await agent_says_something(call, 1.0)  # the re-prompt plays
        await call.advance(10.0)
        assert spoken(call.down) == ["Are you still there?"] * 2
        await agent_says_something(call, 1.0)
        await call.advance(60.0)

    assert spoken(call.down) == ["Are you still there?"] * 2
    assert watchdog.stats.reprompts == 2
    assert llm_requests(call.down) == []


async def test_watchdog_caller_speech_resets_the_idle_timer():
    clock, _, watchdog = call_with_turn()
    async with Call(watchdog, clock) as call:
        await agent_says_something(call)
        await call.advance(8.0)
        await caller_speaks(call, 5.0)  # "hmm, let me check my calendar" (no turn committed)
        await call.advance(9.9)
        assert spoken(call.down) == []
        await call.advance(0.1)

    assert spoken(call.down) == ["Are you still there?"]


async def test_watchdog_caller_answer_gives_back_the_reprompts():
    clock, _, watchdog = call_with_turn()
    async with Call(watchdog, clock) as call:
        await agent_says_something(call)
        for _ in range(2):
            await call.advance(10.0)
            await agent_says_something(call, 1.0)
        await call.send(TranscriptionFrame(text="Sorry, I'm here.", user_id="c", timestamp=""))
        await call.send(UserTurnCommittedFrame(turn_id=2, text="Sorry, I'm here."))
        await call.advance(1.0)
        await agent_says_something(call)  # "No problem. Which day suits you?"
        await call.advance(10.0)

    assert spoken(call.down) == ["Are you still there?"] * 3


async def test_watchdog_call_ended_stops_everything():
    clock, _, watchdog = call_with_turn()
    async with Call(watchdog, clock) as call:
        await agent_says_something(call)
        await call.send(UserTurnCommittedFrame(turn_id=1, text="bye"))
        await call.send(CallEndedFrame())
        await call.advance(60.0)

    assert spoken(call.down) == []
    assert llm_requests(call.down) == []


async def test_watchdog_params_are_configurable():
    clock, _, _ = call_with_turn()
    watchdog = SilenceWatchdog(
        CallContext("sys"),
        params=WatchdogParams(idle_timeout_s=3.0, max_reprompts=1, reprompt_text="Hello?"),
        clock=clock,
    )
    async with Call(watchdog, clock) as call:
        await agent_says_something(call)
        await call.advance(3.0)
        await agent_says_something(call, 1.0)
        await call.advance(10.0)

    assert spoken(call.down) == ["Hello?"]
