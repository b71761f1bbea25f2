"""StabilityCommitRouter as call scripts: the caller talks, pauses; the router commits, speculates.

The router runs in pipecat's direct mode between two recorders, so each frame is handled
before ``send`` returns; time is a ManualClock, advanced explicitly (timers fire inside).
"""

from __future__ import annotations

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    EndFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection

from voiceagent.frames import (
    AgentHeardFrame,
    LLMCancelFrame,
    SpeculationCommitFrame,
    SpeculationDiscardFrame,
    SpeculationStartFrame,
    TurnMetricsFrame,
    UserTurnCommittedFrame,
)
from voiceagent.processors.stability_router import RouterParams

UP = FrameDirection.UPSTREAM
DOWN = FrameDirection.DOWNSTREAM
SYSTEM = "You are the receptionist of a dental practice."


def approx(value: float):
    return pytest.approx(value, abs=1e-5)


BOOKING = (
    "I need",
    "I need to book",
    "I need to book a cleaning",
    "I need to book a cleaning.",
    "I need to book a cleaning.",
)


async def test_caller_books_cleaning_pauses_300ms_committed_once(call_factory):
    call = await call_factory(RouterParams(speculate=False))
    await call.starts_talking()
    await call.says(*BOOKING)
    await call.wait(0.2)
    await call.stops_talking()
    stopped = call.clock.now()
    await call.wait(0.2)
    assert call.of(UserTurnCommittedFrame) == []  # 200 ms of pause is not enough yet
    await call.wait(0.1)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.text == "I need to book a cleaning."
    assert commit.reason == "stable" and not commit.speculative_hit
    assert commit.at == approx(stopped + 0.25)
    [request] = call.of(LLMContextFrame)
    assert request.context.get_messages()[-1] == {"role": "user", "content": commit.text}
    assert call.user_messages() == ["I need to book a cleaning."]
    # The STT's late final of the same audio and more silence change nothing.
    await call.final("I need to book a cleaning.")
    await call.wait(3.0)
    assert len(call.of(UserTurnCommittedFrame)) == 1
    assert len(call.of(LLMContextFrame)) == 1
    assert call.router.stats.commits == 1 and call.router.stats.regrets == 0
    [metrics] = call.of(TurnMetricsFrame)
    assert metrics.turn_id == commit.turn_id
    assert metrics.data["wait_s"] == approx(0.25)
    assert metrics.data["silence_s"] == approx(0.45)
    assert metrics.data["regret"] is False


async def test_final_while_silent_commits_without_waiting_for_three_partials(call_factory):
    call = await call_factory(RouterParams(speculate=False))
    await call.starts_talking()
    await call.says("yes")
    await call.stops_talking()
    await call.wait(0.1)
    await call.final("Yes.")
    await call.wait(0.15)
    [commit] = call.of(UserTurnCommittedFrame)
    assert (commit.text, commit.reason) == ("Yes.", "final")


async def test_dictated_number_waits_longer_then_commits_whole_number(call_factory):
    call = await call_factory(RouterParams(speculate=False))
    await call.starts_talking()
    await call.says("my number is", "my number is five five five", "my number is five five five")
    await call.says("my number is five five five")
    await call.stops_talking()
    await call.wait(0.5)
    assert call.of(UserTurnCommittedFrame) == []  # a plain sentence would be committed by now
    await call.starts_talking()  # ... and the caller goes on dictating
    await call.says("my number is five five five one two three four", every=0.0)
    await call.says(*["my number is 555-1234"] * 3)
    await call.stops_talking()
    await call.wait(1.0)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.text == "my number is 555-1234"
    assert call.router.stats.turns[0]["hesitation"] is False  # a whole phone number
    assert call.router.stats.commits == 1


async def test_hesitation_alone_extends_the_wait_then_commits(call_factory):
    call = await call_factory(RouterParams(speculate=False, min_silence_s=0.25))
    await call.starts_talking()
    await call.says("I want to book and", "I want to book and um", "I want to book and")
    await call.stops_talking()
    await call.wait(0.9)
    assert call.of(UserTurnCommittedFrame) == []
    await call.wait(0.05)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.reason == "stable"
    assert call.router.stats.turns[0]["hesitation"] is True
    assert call.router.stats.turns[0]["wait_s"] == approx(0.95)


async def test_speculative_hit_reply_plays_at_commit_without_second_request(call_factory):
    call = await call_factory(RouterParams(), with_llm=True)
    await call.starts_talking()
    await call.says(*BOOKING)
    [start] = call.of(SpeculationStartFrame)
    assert start.text == "I need to book a cleaning."
    assert len(call.llm.requests) == 1  # the LLM already answered, while the caller talks
    assert call.llm.requests[0][-1]["content"] == "I need to book a cleaning."
    assert call.of(LLMTextFrame) == []  # ... but the hold keeps it quiet
    assert call.context.messages[-1]["role"] == "system"  # nothing committed yet
    await call.stops_talking()
    await call.wait(0.25)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.speculative_hit and commit.turn_id == start.turn_id
    assert [f.text for f in call.of(LLMTextFrame)] == ["Sure, ", "what day ", "works?"]
    assert len(call.llm.requests) == 1  # no second request
    [released] = call.of(SpeculationCommitFrame)
    assert released.turn_id == start.turn_id
    stats = call.router.stats
    assert (stats.speculative_starts, stats.speculative_hits, stats.cancellations) == (1, 1, 0)
    assert call.user_messages() == ["I need to book a cleaning."]


async def test_speculative_miss_caller_resumes_then_commits_new_text(call_factory):
    call = await call_factory(RouterParams(), with_llm=True)
    await call.starts_talking()
    await call.says(*BOOKING)
    [first] = call.of(SpeculationStartFrame)
    await call.stops_talking()
    await call.wait(0.1)
    await call.starts_talking()  # "... for Tuesday"
    [cancel] = call.of(LLMCancelFrame)
    [discard] = call.of(SpeculationDiscardFrame)
    assert cancel.turn_id == discard.turn_id == first.turn_id
    assert cancel.reason == "caller_resumed"
    await call.says(*["I need to book a cleaning for Tuesday"] * 3)
    await call.stops_talking()
    await call.wait(0.25)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.text == "I need to book a cleaning for Tuesday"
    assert commit.turn_id != first.turn_id
    assert call.user_messages() == ["I need to book a cleaning for Tuesday"]
    # Only the second generation was spoken.
    assert [f.text for f in call.of(LLMTextFrame)] == ["Sure, ", "what day ", "works?"]
    assert call.router.stats.cancellations == 1


async def test_final_differs_from_speculation_respeculates_on_the_final(call_factory):
    call = await call_factory(RouterParams())
    await call.starts_talking()
    await call.says("I need a clean in", "I need a clean in", "I need a clean in")
    (first,) = call.of(SpeculationStartFrame)
    await call.stops_talking()
    await call.final("I need a cleaning.")
    assert [f.turn_id for f in call.of(LLMCancelFrame)] == [first.turn_id]
    _, second = call.of(SpeculationStartFrame)  # the LLM starts on the final at once
    assert second.text == "I need a cleaning."
    await call.wait(0.25)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.speculative_hit and commit.turn_id == second.turn_id


async def test_final_differs_after_the_budget_is_spent_speculates_again_once_silent(call_factory):
    call = await call_factory(RouterParams(max_speculations=1))
    await call.starts_talking()
    await call.says("I need a clean", "I need a clean", "I need a clean")
    [spec] = call.of(SpeculationStartFrame)
    await call.says("I need a clean in", "I need a clean in", "I need a clean in")
    assert len(call.of(SpeculationStartFrame)) == 1  # budget spent while the caller speaks
    await call.stops_talking()  # once silent, the current text is always worth a head start
    await call.final("I need a cleaning.")
    *stale, last = call.of(SpeculationStartFrame)
    assert last.text == "I need a cleaning." and stale[0] is spec
    assert [f.turn_id for f in call.of(LLMCancelFrame)] == [f.turn_id for f in stale]
    await call.wait(0.25)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.speculative_hit and commit.text == "I need a cleaning."
    assert commit.turn_id == last.turn_id
    assert len(call.of(LLMContextFrame)) == len(stale) + 1  # no fresh request at the commit


async def test_no_speculation_on_an_unfinished_sounding_prefix_while_speaking(call_factory):
    call = await call_factory(RouterParams())
    await call.starts_talking()
    await call.says("I'd like to", "I'd like to", "I'd like to")
    assert call.of(SpeculationStartFrame) == []  # "to ..." — the caller is mid-sentence
    await call.says("I'd like to book", "I'd like to book", "I'd like to book")
    assert len(call.of(SpeculationStartFrame)) == 1


async def test_context_changed_during_speculation_is_a_miss(call_factory):
    call = await call_factory(RouterParams())
    await call.starts_talking()
    await call.says(*BOOKING)
    [spec] = call.of(SpeculationStartFrame)
    # The end of the agent's previous turn is acknowledged only now.
    await call.send(AgentHeardFrame(turn_id=0, text="How can I help?"), UP)
    await call.stops_talking()
    await call.wait(0.25)
    [commit] = call.of(UserTurnCommittedFrame)
    assert not commit.speculative_hit
    assert [f.turn_id for f in call.of(SpeculationDiscardFrame)] == [spec.turn_id]
    fresh = call.of(LLMContextFrame)[-1].context.get_messages()
    assert [m["role"] for m in fresh] == ["system", "assistant", "user"]


async def test_speculation_churn_is_bounded(call_factory):
    call = await call_factory(RouterParams(max_speculations=2))
    await call.starts_talking()
    for words in ("hello", "hello there", "hello there friend", "hello there my friend"):
        await call.says(words, words, words)
    assert len(call.of(SpeculationStartFrame)) == 2
    assert call.router.stats.cancellations == 2  # each start was cancelled by the next words


async def test_regret_caller_keeps_talking_reply_cancelled_and_merged(call_factory):
    call = await call_factory(RouterParams(speculate=False))
    await call.starts_talking()
    await call.says(*BOOKING)
    await call.stops_talking()
    await call.wait(0.25)
    [first] = call.of(UserTurnCommittedFrame)
    await call.wait(0.3)
    await call.starts_talking()  # 0.55 s after the VAD stop: it was only a pause
    assert call.router.stats.regrets == 1
    [metrics] = call.of(TurnMetricsFrame)
    assert metrics.turn_id == first.turn_id and metrics.data["regret"] is True
    assert metrics.data["regret_after_s"] == approx(0.3)
    # The agent is not audible yet: its reply is cancelled at once, before any words arrive.
    [cancel] = call.of(LLMCancelFrame)
    await call.says("for Tuesday", "for Tuesday", "for Tuesday morning", "for Tuesday morning")
    assert call.of(LLMCancelFrame) == [cancel]
    assert (cancel.turn_id, cancel.reason) == (first.turn_id, "regret")
    assert [f.turn_id for f in call.of(SpeculationDiscardFrame)] == [first.turn_id]
    # Chunks of that reply already past the LLM are flushed downstream too (not spoken).
    assert len(call.of(InterruptionFrame)) == 1
    await call.says("for Tuesday morning")
    await call.stops_talking()
    await call.wait(1.0)
    _, second = call.of(UserTurnCommittedFrame)
    assert second.text == "for Tuesday morning"
    assert call.user_messages() == ["I need to book a cleaning. for Tuesday morning"]
    assert call.of(LLMContextFrame)[-1].context.get_messages()[-1]["content"] == (
        "I need to book a cleaning. for Tuesday morning"
    )
    # The learned pause now covers this caller's 0.55 s pauses.
    assert call.router.stats.learned_pause_s == approx(0.55)
    assert call.router.stats.turns[1]["required_wait_s"] == approx(0.7)


async def test_caller_answering_the_agent_is_not_a_regret(call_factory):
    call = await call_factory(RouterParams(speculate=False))
    await call.starts_talking()
    await call.says(*BOOKING)
    await call.stops_talking()
    await call.wait(0.25)
    await call.wait(0.2)
    await call.send(BotStartedSpeakingFrame(), UP)
    await call.wait(0.6)  # heard the agent for 0.6 s, then answers
    await call.starts_talking()
    await call.says("yes")
    assert call.router.stats.regrets == 0
    assert call.of(LLMCancelFrame) == []


async def test_regret_while_agent_already_speaking_leaves_reply_to_barge_in(call_factory):
    call = await call_factory(RouterParams(speculate=False))
    await call.starts_talking()
    await call.says(*BOOKING)
    await call.stops_talking()
    await call.wait(0.25)
    await call.wait(0.1)
    await call.send(BotStartedSpeakingFrame(), UP)
    await call.wait(0.1)
    await call.starts_talking()
    await call.says("for Tuesday")
    assert call.router.stats.regrets == 1
    assert call.of(LLMCancelFrame) == []


async def test_hard_upper_bound_commits_unstable_text(call_factory):
    call = await call_factory(RouterParams(speculate=False, max_wait_s=2.0))
    await call.starts_talking()
    await call.says("I want the", "I want a")
    await call.stops_talking()
    for text in ("I want the", "I want a", "I want the", "I want a", "I want the"):
        await call.wait(0.35)
        await call.says(text)
    await call.wait(0.2)  # 1.95 s of silence
    assert call.of(UserTurnCommittedFrame) == []
    await call.wait(0.05)
    [commit] = call.of(UserTurnCommittedFrame)
    assert (commit.text, commit.reason) == ("I want the", "max_wait")


async def test_stuck_vad_stable_text_is_committed_eventually(call_factory):
    call = await call_factory(RouterParams(speculate=False, max_speaking_stable_s=5.0))
    await call.starts_talking()  # background noise keeps the VAD open
    await call.says("cancel my appointment", "cancel my appointment", "cancel my appointment")
    await call.wait(4.0)
    assert call.of(UserTurnCommittedFrame) == []
    await call.wait(0.3)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.reason == "speaking_timeout"


async def test_learned_pause_slow_caller_gets_more_time(call_factory):
    call = await call_factory(RouterParams(speculate=False))
    # First sentence: pauses of 0.5 s while the STT is still revising words.
    await call.starts_talking()
    await call.says("I'd like", "I'd like to")
    await call.stops_talking()
    await call.wait(0.5)
    await call.starts_talking()
    await call.says("I'd like to move", "I'd like to move my")
    await call.stops_talking()
    await call.wait(0.5)
    await call.starts_talking()
    await call.says(*["I'd like to move my appointment"] * 3)
    await call.stops_talking()
    assert call.router.stats.learned_pause_s == approx(0.5)
    await call.wait(0.5)
    assert call.of(UserTurnCommittedFrame) == []  # 0.25 s would have been enough by default
    await call.wait(0.15)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.text == "I'd like to move my appointment"
    assert call.router.stats.turns[0]["required_wait_s"] == approx(0.65)


async def test_learned_pause_off_keeps_default_wait(call_factory):
    call = await call_factory(RouterParams(speculate=False, learn_pause=False))
    await call.starts_talking()
    await call.says("I'd like", "I'd like to")
    await call.stops_talking()
    await call.wait(0.5)
    await call.starts_talking()
    await call.says(*["I'd like to move my appointment"] * 3)
    await call.stops_talking()
    await call.wait(0.25)
    assert len(call.of(UserTurnCommittedFrame)) == 1
    assert call.router.stats.learned_pause_s is None


async def test_interruption_kills_speculation_commit_sends_fresh_request(call_factory):
    call = await call_factory(RouterParams())
    await call.starts_talking()
    await call.says(*BOOKING)
    [killed] = call.of(SpeculationStartFrame)
    await call.send(InterruptionFrame())  # a barge-in flushes the LLM: that reply is gone
    assert call.router.stats.cancellations == 1
    await call.stops_talking()
    _, again = call.of(SpeculationStartFrame)
    await call.wait(0.25)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.speculative_hit and commit.turn_id == again.turn_id != killed.turn_id
    assert [f.turn_id for f in call.of(SpeculationCommitFrame)] == [again.turn_id]


async def test_call_end_flushes_the_last_turn_metrics_and_stops_timers(call_factory):
    call = await call_factory(RouterParams(speculate=False))
    await call.starts_talking()
    await call.says(*BOOKING)
    await call.stops_talking()
    await call.wait(0.25)
    assert call.of(TurnMetricsFrame) == []  # the regret window is still open
    await call.send(EndFrame())
    [metrics] = call.of(TurnMetricsFrame)
    assert metrics.data["reason"] == "stable"
    count = len(call.down)
    await call.wait(5.0)
    assert len(call.down) == count


async def test_agent_heard_text_joins_the_context(call_factory):
    call = await call_factory()
    await call.send(AgentHeardFrame(turn_id=3, text="We are open until", interrupted=True), UP)
    assert call.context.messages[-1] == {"role": "assistant", "content": "We are open until..."}
    assert isinstance(call._up.frames[-1], AgentHeardFrame)  # forwarded


async def test_every_frame_is_forwarded(call_factory):
    call = await call_factory(RouterParams(speculate=False))
    frames = [
        VADUserStartedSpeakingFrame(),
        InterimTranscriptionFrame("hello", "caller", ""),
        VADUserStoppedSpeakingFrame(),
    ]
    for frame in frames:
        await call.send(frame)
    assert [f for f in call.down if any(f is sent for sent in frames)] == frames


async def test_words_the_vad_never_saw_commit_only_on_a_final(call_factory):
    """ "Wait," too short and quiet for the VAD: stable partials alone are no proof of silence."""
    call = await call_factory(RouterParams(speculate=False))
    await call.says("Wait,", "Wait,", "Wait,")
    await call.wait(1.0)
    assert call.of(UserTurnCommittedFrame) == []
    await call.final("Wait.")
    await call.wait(0.3)
    [commit] = call.of(UserTurnCommittedFrame)
    assert commit.reason == "final"


async def test_a_cough_after_the_commit_cancels_the_reply_then_answers_after_all(call_factory):
    call = await call_factory(RouterParams(speculate=False))
    await call.starts_talking()
    await call.says(*BOOKING)
    await call.stops_talking()
    await call.wait(0.25)
    [first] = call.of(UserTurnCommittedFrame)
    await call.wait(0.2)
    await call.starts_talking()  # a cough
    [cancel] = call.of(LLMCancelFrame)
    assert cancel.turn_id == first.turn_id
    await call.wait(0.3)
    await call.stops_talking()  # ... and no words
    original, rerun = call.of(LLMContextFrame)
    assert rerun.context.get_messages() == original.context.get_messages()
    assert call.router.stats.reruns == 1 and call.router.stats.regrets == 1
    assert len(call.of(UserTurnCommittedFrame)) == 1  # still one caller turn
