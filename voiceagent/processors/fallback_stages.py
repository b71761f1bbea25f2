"""What counts as a failure per stage, and what the next provider is handed (FallbackSwitcher).

- ``STTFallback``: the caller is speaking (VAD) and the STT gives no transcript within
  ``timeout_s`` of the utterance's start, or it pushes an error. The next STT is handed the
  caller's utterance so far (pre-roll audio, VAD start, audio, VAD stop if it came), so the
  words being spoken when the primary failed are transcribed too.
- ``LLMFallback``: a generation gets an error (connection refused, 5xx, ...) or no first
  token within ``first_token_timeout_s``. The same generation (its ``LLMContextFrame``; no
  longer speculative if the commit released it meanwhile) is re-run on the next LLM; the failed
  attempt's ``LLMFullResponseStartFrame`` is held until its first token, so downstream sees one
  reply. With no LLM left the reply is ``apology_text`` instead of dead air. An error after the
  first token ends the reply there (``LLMFullResponseEndFrame``) and later generations use
  the next LLM.
- ``TTSFallback``: any error from the TTS (402/429 refusals, a lost socket...). The next TTS
  is handed every frame the failed one took and had not finished: the chunks whose
  ``TTSTextFrame`` (pushed after a chunk's audio) did not come out, starting with the one that
  failed, and the reply's start and end frames, so no words are lost: at worst a chunk whose
  audio was cut is spoken again (with Deepgram, whose text comes at the reply's end, the
  reply so far).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import (
    AggregatedTextFrame,
    EagerEndOfTurnCancelFrame,
    ErrorFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallsStartedFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    SystemFrame,
    TextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.processors.fallback import FallbackSwitcher


def _seconds(frame: InputAudioRawFrame) -> float:
    rate = frame.sample_rate * max(1, frame.num_channels)
    return len(frame.audio) / (2 * rate) if rate else 0.0


_TRANSCRIPTS = (InterimTranscriptionFrame, TranscriptionFrame)


class STTFallback(FallbackSwitcher):
    """STT providers in order; see the module docstring."""

    def __init__(
        self,
        services: list[FrameProcessor],
        *,
        timeout_s: float = 2.5,
        preroll_s: float = 0.5,
        max_utterance_s: float = 30.0,
        clock: Clock = DEFAULT_CLOCK,
    ) -> None:
        """Create the switcher.

        Args:
            services: The STTs, primary first.
            timeout_s: Longest wait from the caller's VAD start for a first transcript.
            preroll_s: Audio before the VAD start handed to the next STT with the utterance.
            max_utterance_s: Longest utterance kept for the hand-over.
            clock: Time source of the timeout.
        """
        super().__init__(services, stage="stt", clock=clock)
        self.timeout_s = timeout_s
        # Kept by duration: the transport may gather caller audio into frames of any length.
        self._preroll_s = preroll_s
        self._max_utterance_s = max_utterance_s
        self._recent: deque[InputAudioRawFrame] = deque()
        self._recent_s = 0.0
        self._utterance_s = 0.0
        self._preroll: list[Frame] = []
        self._utterance: list[Frame] | None = None  # open from VAD start to its final
        self._stopped = False
        self._deadline = self.new_deadline(self._on_timeout)

    def _keep_recent(self, frame: InputAudioRawFrame, seconds: float) -> None:
        """The last ``preroll_s`` of caller audio, whole frames."""
        recent = self._recent
        recent.append(frame)
        self._recent_s += seconds
        while len(recent) > 1 and self._recent_s > self._preroll_s + 1e-9:
            self._recent_s -= _seconds(recent.popleft())

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Keep the caller's current utterance for a hand-over, then route the frame."""
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, InputAudioRawFrame):
                seconds = _seconds(frame)
                self._keep_recent(frame, seconds)
                if self._utterance is not None and self._utterance_s < self._max_utterance_s:
                    self._utterance.append(frame)
                    self._utterance_s += seconds
            elif isinstance(frame, VADUserStartedSpeakingFrame):
                self._preroll = list(self._recent)
                self._utterance = [frame]
                self._utterance_s = 0.0
                self._stopped = False
                if self._next_provider() is not None:
                    self._deadline.set(self._clock.now() + self.timeout_s)
            elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._utterance is not None:
                self._utterance.append(frame)
                self._stopped = True
        await super().process_frame(frame, direction)

    async def on_output(self, service: FrameProcessor, frame: Frame) -> list[Frame]:
        """A transcript shows the STT works; a final after VAD stop closes the utterance."""
        if isinstance(frame, _TRANSCRIPTS) and isinstance(frame.text, str) and frame.text.strip():
            self._deadline.cancel()
            if isinstance(frame, TranscriptionFrame) and self._stopped:
                self._utterance = None
        return [frame]

    async def hand_over(self, failed: FrameProcessor, new: FrameProcessor) -> None:
        """Give the next STT the utterance in progress."""
        self._deadline.cancel()
        if self._utterance is not None:
            await self.hand(new, [*self._preroll, *self._utterance])

    def _next_provider(self) -> FrameProcessor | None:
        services = self.services
        later = services[services.index(self.active) + 1 :]
        return next((s for s in later if s.is_usable), None)

    def _on_timeout(self) -> None:
        reason = f"no transcript {self.timeout_s:g} s after the caller started speaking"
        self.spawn(self._fail_if_still_silent(reason))

    async def _fail_if_still_silent(self, reason: str) -> None:
        if self._utterance is not None:
            await self.fail_over(reason)


@dataclass
class _Generation:
    """One attempt at a generation on one LLM."""

    context: LLMContextFrame
    service: FrameProcessor
    released: bool = False  # the commit released it (it is no longer speculative)
    held_start: LLMFullResponseStartFrame | None = None
    answered: bool = False
    failed: bool = False
    cancelled: bool = False


_ANSWERS = (LLMTextFrame, FunctionCallsStartedFrame, FunctionCallInProgressFrame)


class LLMFallback(FallbackSwitcher):
    """LLM providers in order; see the module docstring."""

    def __init__(
        self,
        services: list[FrameProcessor],
        *,
        first_token_timeout_s: float = 3.0,
        apology_text: str = "I'm sorry, I'm having trouble answering right now.",
        clock: Clock = DEFAULT_CLOCK,
    ) -> None:
        """Create the switcher.

        Args:
            services: The LLMs, primary first.
            first_token_timeout_s: Longest wait from a generation's start for its first token.
            apology_text: The reply when every LLM failed a generation.
            clock: Time source of the timeout.
        """
        super().__init__(services, stage="llm", clock=clock)
        self.first_token_timeout_s = first_token_timeout_s
        self.apology_text = apology_text
        self.apologies = 0
        self.retries = 0
        self._gen: _Generation | None = None
        self._deadline = self.new_deadline(self._on_timeout)

    def register_tools(self, tools: Any) -> Any:
        """Register the agent's tools on every LLM of the chain; returns the context's schema."""
        schemas = [llm.register_tools(tools) for llm in self.services]
        return schemas[0]

    def on_input(self, service: FrameProcessor, frame: Frame) -> None:
        """Follow the generations the active LLM is asked for."""
        if isinstance(frame, LLMContextFrame):
            self._gen = _Generation(frame, service)
            self._deadline.set(self._clock.now() + self.first_token_timeout_s)
        elif isinstance(frame, UserStoppedSpeakingFrame) and self._gen is not None:
            self._gen.released = True
        elif self._gen is not None and (
            isinstance(frame, InterruptionFrame)
            or (isinstance(frame, EagerEndOfTurnCancelFrame) and not self._gen.released)
        ):
            self._gen.cancelled = True  # its end still comes out, after its held start
            self._deadline.cancel()

    async def on_output(self, service: FrameProcessor, frame: Frame) -> list[Frame]:
        """Hold a reply's start until its first token; drop a failed attempt's end."""
        gen = self._gen
        if gen is None or gen.service is not service:
            return [frame]
        if isinstance(frame, LLMFullResponseStartFrame) and not gen.answered:
            gen.held_start = frame
            return []
        if isinstance(frame, _ANSWERS) and not gen.answered and not gen.failed:
            gen.answered = True
            self._deadline.cancel()
            return [gen.held_start, frame] if gen.held_start else [frame]
        if isinstance(frame, LLMFullResponseEndFrame):
            self._gen = None
            self._deadline.cancel()
            if gen.failed:
                return []
            return [gen.held_start, frame] if gen.held_start and not gen.answered else [frame]
        return [frame]

    async def on_provider_error(self, error: ErrorFrame) -> FrameProcessor | None:
        """Re-run an unanswered generation on the next LLM; otherwise fail over."""
        gen = self._gen
        if gen is None or gen.failed or gen.cancelled:
            return await self.fail_over(error.error)
        gen.failed = True
        self._deadline.cancel()
        if gen.answered:  # cut mid-reply: end the reply, later generations go elsewhere
            await self.push_frame(LLMFullResponseEndFrame())
            return await self.fail_over(error.error)
        await self._retry(gen, error.error)
        return self.active

    async def hand_over(self, failed: FrameProcessor, new: FrameProcessor) -> None:
        """Re-run the failed, unanswered generation on the new LLM."""
        gen = self._gen
        if gen is None or not gen.failed or gen.answered:
            return
        self.retries += 1
        context = gen.context
        if context.speculation and gen.released:
            context = LLMContextFrame(context=context.context)  # the commit already released it
        await self.hand(new, [context])

    async def _retry(self, gen: _Generation, reason: str) -> None:
        if await self.fail_over(reason) is None:
            await self._apologize(gen)

    async def _apologize(self, gen: _Generation) -> None:
        self.apologies += 1
        start = gen.held_start or LLMFullResponseStartFrame()
        gen.held_start = None
        for frame in (start, LLMTextFrame(self.apology_text), LLMFullResponseEndFrame()):
            await self.push_frame(frame)

    def _on_timeout(self) -> None:
        gen = self._gen
        if gen is not None and not (gen.answered or gen.failed or gen.cancelled):
            self.spawn(self._time_out(gen))

    async def _time_out(self, gen: _Generation) -> None:
        if gen is not self._gen or gen.answered or gen.failed or gen.cancelled:
            return
        gen.failed = True
        await self.send_quietly(gen.service, InterruptionFrame())  # stop the late generation
        await self._retry(gen, f"no first token within {self.first_token_timeout_s:g} s")


_CHUNKS = (AggregatedTextFrame, TTSSpeakFrame)
_NOT_CHUNKS = (LLMTextFrame, InterimTranscriptionFrame, TranscriptionFrame)
_MAX_PENDING = 256


class TTSFallback(FallbackSwitcher):
    """TTS providers in order; see the module docstring."""

    def __init__(self, services: list[FrameProcessor], *, clock: Clock = DEFAULT_CLOCK) -> None:
        """Create the switcher (``services``: the TTSs, primary first)."""
        super().__init__(services, stage="tts", clock=clock)
        self._pending: deque[Frame] = deque(maxlen=_MAX_PENDING)
        self._reply_start: Frame | None = None

    def on_input(self, service: FrameProcessor, frame: Frame) -> None:
        """Note every frame the TTS takes until it is finished with it."""
        if isinstance(frame, InterruptionFrame):
            self._pending.clear()
            self._reply_start = None
        elif isinstance(frame, SystemFrame):
            return
        elif isinstance(frame, LLMFullResponseStartFrame):
            self._reply_start = frame
            self._pending.append(frame)
        else:
            if isinstance(frame, LLMFullResponseEndFrame):
                self._reply_start = None
            self._pending.append(frame)

    async def on_output(self, service: FrameProcessor, frame: Frame) -> list[Frame]:
        """A chunk is done at its ``TTSTextFrame``; other frames when they come out."""
        if isinstance(frame, TTSAudioRawFrame) or not self._pending:
            return [frame]
        if isinstance(frame, TTSTextFrame):
            chunks = [f for f in self._pending if _is_chunk(f)]
            if chunks:
                done = next((f for f in chunks if f.id == frame.segment_id), chunks[0])
                self._pending.remove(done)
        elif not _is_chunk(frame):
            for pending in self._pending:
                if pending.id == frame.id:
                    self._pending.remove(pending)
                    break
        return [frame]

    async def hand_over(self, failed: FrameProcessor, new: FrameProcessor) -> None:
        """Give the next TTS the open reply's start and every unfinished frame, in order."""
        frames = list(self._pending)
        if self._reply_start is not None and self._reply_start not in frames:
            frames.insert(0, self._reply_start)
        self._pending.clear()
        # The failed TTS drops what it still holds instead of waiting for audio that never comes.
        await self.send_quietly(failed, InterruptionFrame())
        await self.hand(new, frames)


def _is_chunk(frame: Frame) -> bool:
    """Text the TTS speaks (answered by one ``TTSTextFrame``)."""
    return (
        isinstance(frame, (*_CHUNKS, TextFrame))
        and not isinstance(frame, _NOT_CHUNKS)
        and not getattr(frame, "skip_tts", False)
        and bool(frame.text.strip())
    )
