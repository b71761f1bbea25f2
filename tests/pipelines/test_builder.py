"""The builder assembles the card's chain; any stage can be swapped, processors inserted."""

import pytest
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.processors.frame_processor import FrameProcessor

from voiceagent.pipelines.builder import STAGES, AgentGreeter, build_call_processors
from voiceagent.pipelines.resources import AgentResources
from voiceagent.processors.barge_in import BargeInGate
from voiceagent.processors.caller_sound import CallerSoundDetector
from voiceagent.processors.end_of_turn import EndOfTurnDetector
from voiceagent.processors.floor_hold import FloorHold
from voiceagent.processors.hang_up import CallHangUp
from voiceagent.processors.sentence_aggregator import SentenceAggregator
from voiceagent.processors.speculation_hold import SpeculationHold
from voiceagent.processors.stability_router import StabilityCommitRouter
from voiceagent.processors.tool_results import ToolResultRelay
from voiceagent.processors.voicemail import AnsweringMachineDetector, VoicemailResponder
from voiceagent.processors.watchdog import SilenceWatchdog
from voiceagent.settings import Settings


class Stage(FrameProcessor):
    def __init__(self, label: str) -> None:
        super().__init__(name=label)


def providers() -> dict:
    return {name: (lambda parts, n=name: Stage(n)) for name in ("stt", "llm", "tts")}


def test_the_chain_follows_the_card_with_swapped_providers():
    settings = Settings.from_env(
        {}, turns={"router": {"stable_partials": 2}, "end_of_turn_model": True}
    )
    chain, parts = build_call_processors(settings, AgentResources(settings), overrides=providers())
    kinds = [type(p) for p in chain]
    assert kinds[1:] == [
        CallerSoundDetector,
        EndOfTurnDetector,
        Stage,
        AnsweringMachineDetector,
        BargeInGate,
        IdentityFilter,  # no local LLM server running here: no prefetch
        StabilityCommitRouter,
        SilenceWatchdog,
        ToolResultRelay,
        Stage,
        SpeculationHold,
        SentenceAggregator,
        AgentGreeter,
        VoicemailResponder,
        Stage,
        FloorHold,
        CallHangUp,
    ]
    assert [p.name for p in chain if isinstance(p, Stage)] == ["stt", "llm", "tts"]
    assert list(parts.processors) == list(STAGES)
    assert parts.processors["router"].params.stable_partials == 2  # settings reach the stage
    # The first spoken chunk starts at the first clause boundary, however short ("Sure,").
    assert parts.processors["aggregator"]._first_min == 1
    words = Settings.from_env({"VOICEAGENT_TURNS__FIRST_CHUNK_MIN_WORDS": "4"})
    _, parts4 = build_call_processors(words, AgentResources(words), overrides=providers())
    assert parts4.processors["aggregator"]._first_min == 4
    # The end-of-turn model is off by default (a pass-through takes its place).
    off = Settings.from_env({})
    chain_off, _ = build_call_processors(off, AgentResources(off), overrides=providers())
    assert not any(isinstance(p, EndOfTurnDetector) for p in chain_off)


def test_extra_processors_go_right_after_their_stage():
    settings = Settings.from_env({})
    tap = Stage("tap")
    chain, _ = build_call_processors(
        settings, AgentResources(settings), overrides=providers(), extra={"router": [tap]}
    )
    router = next(i for i, p in enumerate(chain) if isinstance(p, StabilityCommitRouter))
    assert chain[router + 1] is tap


def test_unknown_stage_names_are_refused():
    settings = Settings.from_env({})
    with pytest.raises(ValueError, match="unknown pipeline stage"):
        build_call_processors(
            settings, AgentResources(settings), overrides={"asr": providers()["stt"]}
        )
