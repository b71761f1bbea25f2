"""The order and capability rules of a call's chain, checked when it is built.

Each stage relies on others being in the right place: caller audio stops at the turn engine, the
turn engine's early replies need an LLM that can withdraw them, the output can only tell what was
heard if the TTS brackets its replies, and so on. :func:`check_chain` checks a chain (the
builder's, or a pipeline of your own between a transport's input and output) against every rule
and raises :class:`ChainContractError` naming the processor, the rule and the fix. A processor
the rules do not know (your own) is never refused; only its position relative to known stages
is checked when it *is* a known kind (a pipecat STT, LLM or TTS service).

The rules (one function each, below):

1. one turn engine (``TurnProcessor``);
2. caller-audio stages (VAD/caller voice, end-of-turn model, answering machine detector, STT,
   machine words) come before the turn engine: caller audio stops there;
3. the end-of-turn model follows the VAD (it runs at each VAD stop);
4. the answering machine detector comes before the STT and ``MachineWords`` after it;
5. the LLM comes after the turn engine (its replies, speculative ones, and the conversation
   updates a local LLM prefetches all come from there);
6. every LLM can withdraw a speculative reply and applies the tool policy (``VoiceLLMMixin``);
7. the sentence aggregator and the voicemail responder sit between the LLM and the TTS;
8. the TTS comes after the LLM and brackets each reply with ``TTSStartedFrame`` /
   ``TTSStoppedFrame`` (``VoiceTTSService`` / ``VoiceTTSMixin``, or pipecat's own services);
9. ``CallHangUp`` comes after the TTS (its fence follows the last words through the TTS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from pipecat.pipeline.service_switcher import ServiceSwitcher
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService

from voiceagent.processors.caller_voice import CallerVoiceProcessor
from voiceagent.processors.end_of_turn import EndOfTurnDetector
from voiceagent.processors.fallback_stages import LLMFallback, STTFallback, TTSFallback
from voiceagent.processors.hang_up import CallHangUp
from voiceagent.processors.machine_words import MachineWords
from voiceagent.processors.sentence_aggregator import SentenceAggregator
from voiceagent.processors.voicemail import AnsweringMachineDetector, VoicemailResponder
from voiceagent.services.tts import VoiceTTSMixin
from voiceagent.services.voice_llm import VoiceLLMMixin
from voiceagent.turns.processor import TurnProcessor


class ChainContractError(ValueError):
    """A chain breaks a stage contract; the message names the processor, the rule and the fix."""


_KINDS: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("turns", (TurnProcessor,)),
    ("voice", (CallerVoiceProcessor, VADProcessor)),
    ("end_of_turn", (EndOfTurnDetector,)),
    ("answering_machine", (AnsweringMachineDetector,)),
    ("machine_words", (MachineWords,)),
    ("stt", (STTService, STTFallback)),
    ("llm", (LLMService, LLMFallback)),
    ("aggregator", (SentenceAggregator,)),
    ("voicemail", (VoicemailResponder,)),
    ("tts", (TTSService, TTSFallback)),
    ("hang_up", (CallHangUp,)),
)
CALLER_AUDIO_KINDS = ("voice", "end_of_turn", "answering_machine", "stt", "machine_words")


def kind_of(processor: FrameProcessor) -> str | None:
    """The stage kind a processor is (``stt``, ``llm``, ``turns``…), or None for your own."""
    for kind, types in _KINDS:
        if isinstance(processor, types):
            return kind
    return None


class _Chain:
    def __init__(self, chain: Sequence[FrameProcessor]) -> None:
        self.chain = list(chain)
        self.kinds = [kind_of(p) for p in self.chain]

    def all(self, kind: str) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k == kind]

    def first(self, kind: str) -> int | None:
        found = self.all(kind)
        return found[0] if found else None

    def name(self, index: int) -> str:
        return f"{type(self.chain[index]).__name__} (#{index + 1} in the chain)"


def _one_turn_engine(c: _Chain) -> Iterator[str]:
    engines = c.all("turns")
    if not engines:
        yield (
            "the chain has no turn engine (TurnProcessor): nothing would commit the caller's "
            "turns, start the agent's replies or handle barge-in; keep the 'turns' stage"
        )
    for extra in engines[1:]:
        yield (
            f"{c.name(extra)} is a second turn engine; a call has exactly one (it owns the "
            "conversation)"
        )


def _caller_audio_before_turns(c: _Chain) -> Iterator[str]:
    turns = c.first("turns")
    if turns is None:
        return
    for i, kind in enumerate(c.kinds):
        if kind in CALLER_AUDIO_KINDS and i > turns:
            yield (
                f"{c.name(i)} must come before the turn engine: caller audio stops at the "
                f"TurnProcessor, so a {kind} stage after it hears nothing"
            )


def _end_of_turn_after_vad(c: _Chain) -> Iterator[str]:
    voice = c.first("voice")
    for i in c.all("end_of_turn"):
        if voice is None or voice > i:
            yield (
                f"{c.name(i)} must follow the VAD (CallerVoiceProcessor): it judges the "
                "caller's audio at each VAD stop"
            )


def _machine_detection_around_stt(c: _Chain) -> Iterator[str]:
    stt = c.first("stt")
    if stt is None:
        return
    for i in c.all("answering_machine"):
        if i > stt:
            yield (
                f"{c.name(i)} must come before the STT: it listens to the caller's audio and "
                "gets the STT's words back from MachineWords"
            )
    for i in c.all("machine_words"):
        if i < stt:
            yield f"{c.name(i)} must come after the STT: it reads the STT's transcripts"


def _llm_after_turns(c: _Chain) -> Iterator[str]:
    turns = c.first("turns")
    if turns is None:
        return
    for i in c.all("llm"):
        if i < turns:
            yield (
                f"{c.name(i)} must come after the turn engine: it answers the turn engine's "
                "LLMContextFrames, holds its speculative replies until the commit, and "
                "prefetches the conversation updates it sends"
            )


def _services(processor: FrameProcessor) -> list[FrameProcessor]:
    if isinstance(processor, ServiceSwitcher):
        return list(processor.services)
    return [processor]


def _who(c: _Chain, index: int, service: FrameProcessor) -> str:
    """The processor, or the provider inside a fallback stage."""
    name = c.name(index)
    return name if service is c.chain[index] else f"{name}: its {type(service).__name__}"


def _llm_withdraws_speculations(c: _Chain) -> Iterator[str]:
    for i in c.all("llm"):
        for service in _services(c.chain[i]):
            if isinstance(service, LLMService) and not isinstance(service, VoiceLLMMixin):
                cls = type(service).__name__
                yield (
                    f"{_who(c, i, service)} must support cancellation of the turn engine's "
                    "speculative replies and the tool policy (VoiceLLMMixin): without it a "
                    "speculation withdrawn while queued is still answered, and side-effecting "
                    f"tools run for replies the caller cut off. Declare "
                    f"`class Voice{cls}(VoiceLLMMixin, {cls})` and use that"
                )


def _between_llm_and_tts(c: _Chain) -> Iterator[str]:
    llm, tts = c.first("llm"), c.first("tts")
    roles = {
        "aggregator": "cuts the LLM's tokens into chunks for the TTS",
        "voicemail": "mutes replies to an answering machine before they are spoken",
    }
    for kind, what in roles.items():
        for i in c.all(kind):
            if (llm is not None and i < llm) or (tts is not None and i > tts):
                yield f"{c.name(i)} must sit between the LLM and the TTS: it {what}"


def _pushes_reply_brackets(tts: FrameProcessor) -> bool:
    if isinstance(tts, VoiceTTSMixin) or type(tts).__module__.startswith("pipecat."):
        return True  # ours by default; pipecat's services bracket their replies themselves
    # pipecat has no public accessor for these constructor flags; if it renames them the
    # check passes (getattr default) rather than refusing a working TTS.
    return bool(getattr(tts, "_push_start_frame", True) or getattr(tts, "_push_stop_frames", True))


def _tts_after_llm_with_brackets(c: _Chain) -> Iterator[str]:
    llm = c.first("llm")
    for i in c.all("tts"):
        if llm is not None and i < llm:
            yield f"{c.name(i)} must come after the LLM: it speaks the LLM's replies"
        for service in _services(c.chain[i]):
            if isinstance(service, TTSService) and not _pushes_reply_brackets(service):
                cls = type(service).__name__
                yield (
                    f"{_who(c, i, service)} pushes no TTSStartedFrame/TTSStoppedFrame, so the "
                    "output cannot tell where an agent turn ends and every turn would count "
                    "as cut off by the caller's next word. Subclass voiceagent.VoiceTTSService "
                    f"(or `class {cls}(VoiceTTSMixin, ...)`), or pass push_start_frame=True, "
                    "push_stop_frames=True"
                )


def _hang_up_after_tts(c: _Chain) -> Iterator[str]:
    tts = c.first("tts")
    for i in c.all("hang_up"):
        if tts is not None and i < tts:
            yield (
                f"{c.name(i)} must come after the TTS: its fence follows the agent's last "
                "words through the TTS to the output"
            )


RULES: tuple[Callable[[_Chain], Iterator[str]], ...] = (
    _one_turn_engine,
    _caller_audio_before_turns,
    _end_of_turn_after_vad,
    _machine_detection_around_stt,
    _llm_after_turns,
    _llm_withdraws_speculations,
    _between_llm_and_tts,
    _tts_after_llm_with_brackets,
    _hang_up_after_tts,
)


def contract_problems(chain: Sequence[FrameProcessor]) -> list[str]:
    """Every broken rule of ``chain`` (processors in pipeline order, transports excluded)."""
    c = _Chain(chain)
    return [problem for rule in RULES for problem in rule(c)]


def check_chain(chain: Sequence[FrameProcessor]) -> None:
    """Refuse a chain that breaks a stage contract.

    Raises:
        ChainContractError: naming every broken rule (one per line).
    """
    problems = contract_problems(chain)
    if len(problems) == 1:
        raise ChainContractError(problems[0])
    if problems:
        raise ChainContractError("the call chain breaks its contracts:\n- " + "\n- ".join(problems))
