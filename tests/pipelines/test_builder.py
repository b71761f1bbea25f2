"""The builder assembles the card's chain; any stage can be swapped, processors inserted."""

import pytest
from pipecat.processors.frame_processor import FrameProcessor

from voiceagent.pipelines.builder import STAGES, build_call_processors
from voiceagent.pipelines.resources import AgentResources
from voiceagent.processors.caller_voice import CallerVoiceProcessor
from voiceagent.processors.end_of_turn import EndOfTurnDetector
from voiceagent.processors.hang_up import CallHangUp
from voiceagent.processors.sentence_aggregator import SentenceAggregator
from voiceagent.processors.voicemail import (
    AnsweringMachineDetector,
    MachineWords,
    VoicemailResponder,
)
from voiceagent.settings import Settings
from voiceagent.turns.processor import TurnProcessor


class Stage(FrameProcessor):
    def __init__(self, label: str) -> None:
        super().__init__(name=label)


def providers() -> dict:
    return {name: (lambda parts, n=name: Stage(n)) for name in ("stt", "llm", "tts")}


def test_the_chain_follows_the_card_with_swapped_providers():
    settings = Settings.from_env(
        {},
        turns={"endpointing": {"stable_partials": 3, "end_of_turn_model": True}},
    )
    chain, parts = build_call_processors(settings, AgentResources(settings), overrides=providers())
    assert [type(p) for p in chain] == [
        CallerVoiceProcessor,
        AnsweringMachineDetector,
        EndOfTurnDetector,
        Stage,
        MachineWords,
        TurnProcessor,
        Stage,
        SentenceAggregator,
        VoicemailResponder,
        Stage,
        CallHangUp,
    ]
    assert [p.name for p in chain if isinstance(p, Stage)] == ["stt", "llm", "tts"]
    assert list(parts.processors) == list(STAGES)
    turns = parts.processors["turns"]
    assert turns.engine.options.endpointing.stable_partials == 3  # settings reach the engine
    assert turns.conversation is parts.conversation
    # The first spoken chunk starts at the first clause boundary, however short ("Sure,").
    assert parts.processors["aggregator"]._first_min == 1
    words = Settings.from_env({"VOICEAGENT_TURNS__FIRST_CHUNK_MIN_WORDS": "4"})
    _, parts4 = build_call_processors(words, AgentResources(words), overrides=providers())
    assert parts4.processors["aggregator"]._first_min == 4


def test_an_optional_stage_that_is_off_is_left_out_not_replaced_by_a_placeholder():
    off = Settings.from_env({})
    chain, parts = build_call_processors(off, AgentResources(off), overrides=providers())
    assert not any(isinstance(p, EndOfTurnDetector) for p in chain)
    assert "end_of_turn" not in parts.processors
    assert len(chain) == len(STAGES) - 1
    # No answering machine detection at all: its three stages are left out too.
    no_amd = Settings.from_env({"VOICEAGENT_TELEPHONY__MACHINE_DETECTION": "off"})
    chain, parts = build_call_processors(no_amd, AgentResources(no_amd), overrides=providers())
    machine_stages = {"answering_machine", "machine_words", "voicemail"}
    assert not machine_stages & set(parts.processors)
    assert len(chain) == len(STAGES) - 1 - len(machine_stages)


def test_extra_processors_go_right_after_their_stage():
    settings = Settings.from_env({})
    tap = Stage("tap")
    chain, _ = build_call_processors(
        settings, AgentResources(settings), overrides=providers(), extra={"turns": [tap]}
    )
    turns = next(i for i, p in enumerate(chain) if isinstance(p, TurnProcessor))
    assert chain[turns + 1] is tap


def test_unknown_stage_names_are_refused():
    settings = Settings.from_env({})
    with pytest.raises(ValueError, match="unknown pipeline stage"):
        build_call_processors(
            settings, AgentResources(settings), overrides={"asr": providers()["stt"]}
        )
