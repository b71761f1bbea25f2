"""The server's turn-taking series, read from one call's frames by its metrics tap."""

from __future__ import annotations

import sys
from pathlib import Path

from pipecat.frames.frames import BotStartedSpeakingFrame, TTSAudioRawFrame
from prometheus_client import CollectorRegistry

from voiceagent.clock import ManualClock
from voiceagent.frames import (
    ProviderSwitchedFrame,
    TurnCountsFrame,
    TurnMetricsFrame,
    UserTurnCommittedFrame,
)
from voiceagent.server.turn_metrics import COUNTER_HELP, TurnMetrics
from voiceagent.turns.state import COUNTERS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "processors"))
from clocked_pipeline import UP, Call  # noqa: E402


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_a_call_s_turn_frames_become_the_server_s_series():
    clock = ManualClock()
    registry = CollectorRegistry()
    metrics = TurnMetrics(registry)
    async with Call(metrics.tap(clock), clock) as call:
        await call.send(BotStartedSpeakingFrame(), direction=UP)  # the greeting: no turn to time
        await call.send(TurnCountsFrame(changes={"commits": 1, "speculative_starts": 2}))
        await call.send(UserTurnCommittedFrame(turn_id=1, text="Do you have Tuesday?"))
        await call.advance(0.25)
        await call.send(
            UserTurnCommittedFrame(turn_id=1, text="Do you have a Tuesday?", revision=True)
        )
        await call.advance(0.15)
        await call.send(TTSAudioRawFrame(b"\x00\x00" * 160, 8000, 1, "reply"))
        await call.send(BotStartedSpeakingFrame(), direction=UP)  # the reply's first audio left
        await call.send(
            BotStartedSpeakingFrame(), direction=UP
        )  # it resumes after a pause: not a reply
        await call.send(TurnMetricsFrame(turn_id=1, data={"silence_s": 0.45, "regret": False}))
        await call.send(TurnMetricsFrame(turn_id=2, data={"reason": "dtmf"}))  # no voice end
        await call.send(TurnCountsFrame(changes={"interruptions": 1, "no_such_counter": 4}))
        await call.send(ProviderSwitchedFrame(stage="stt", failed="deepgram", serving="whisper"))
        forwarded = [type(f).__name__ for f in call.down]

    assert value(registry, "voiceagent_turn_commits_total") == 1
    assert value(registry, "voiceagent_turn_speculative_starts_total") == 2
    assert value(registry, "voiceagent_turn_interruptions_total") == 1
    assert value(registry, "voiceagent_turn_reply_delay_seconds_count") == 1
    assert abs(value(registry, "voiceagent_turn_reply_delay_seconds_sum") - 0.4) < 1e-9
    assert value(registry, "voiceagent_turn_commit_delay_seconds_count") == 1
    assert value(registry, "voiceagent_turn_commit_delay_seconds_sum") == 0.45
    assert value(registry, "voiceagent_turn_fallback_switches_total", stage="stt") == 1
    assert forwarded.count("TurnCountsFrame") == 2 and "TTSAudioRawFrame" in forwarded


def test_every_turn_engine_counter_has_a_series():
    registry = CollectorRegistry()
    TurnMetrics(registry)
    assert set(COUNTER_HELP) == set(COUNTERS)
    for name in COUNTERS:
        assert value(registry, f"voiceagent_turn_{name}_total") == 0, name
