"""The caller's voice: pipecat's VAD plus a frame-fast sound onset, in one stage.

Silero (pipecat's ``VADProcessor``) needs ``start_secs`` of confident speech plus its volume
ramp: ≈ 300 ms from the caller's first sound to ``VADUserStartedSpeakingFrame``. That is too
late to stop the agent's audio at a barge-in, or to hold a reply that would start over a caller
who resumes. ``CallerVoiceProcessor`` also watches the energy of every 20 ms of audio against an
adaptive noise floor (``SoundOnset``, in 20 ms blocks) and pushes
``CallerSoundFrame(sounding=True)`` after ``onset_frames`` loud blocks (40 ms),
``sounding=False`` after ``release_frames`` quiet ones.
The sound only times and pauses; what it was is decided by the VAD, the STT and the turn engine.

Frames: consumes ``InputAudioRawFrame`` (forwarded: the STT needs it); emits
``VADUserStartedSpeakingFrame`` / ``VADUserStoppedSpeakingFrame`` (pipecat's) and
``CallerSoundFrame``. Pipecat's periodic ``UserSpeakingFrame`` is not sent (nothing reads it).
Silero runs on one session per process, batched across calls on the event loop
(:mod:`voiceagent.processors.silero`). Per frame besides: one dot product on a preallocated
buffer, no allocation, no logging.
"""

from __future__ import annotations

import math

import numpy as np
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection

from voiceagent.frames import CallerSoundFrame, CallStartedFrame, pass_caller_audio
from voiceagent.processors.silero import SharedSileroVAD, silero_session
from voiceagent.transports.twilio.echo import AgentEcho

__all__ = [
    "CallerVoiceProcessor",
    "SharedSileroVAD",
    "SoundOnset",
    "silero_analyzer",
    "silero_session",
]
from voiceagent.turns.options import VoiceActivity

_FRAME_S = 0.02
_PRIMING_BLOCKS = 5
"""The line's first 20 ms blocks that set its floor (and are never a sound)."""
_DIGITAL_SILENCE_RMS = 2.0
"""Quieter blocks are digital silence (μ-law's zero, resampled): no line yet to learn from."""
_NO_ACTIVITY_FRAMES = 1e9
"""``speech_activity_period`` that never comes: no ``UserSpeakingFrame`` flood."""


class SoundOnset:
    """Is the caller's line loud? Energy against a floor that falls at once and rises slowly.

    Judged in 20 ms blocks whatever the frame size (the transport may gather caller audio into
    longer frames), so ``onset_frames`` and ``release_frames`` keep their meaning in time.
    """

    def __init__(self, options: VoiceActivity | None = None) -> None:
        self.options = options or VoiceActivity()
        self._buf = np.zeros(0, dtype=np.float32)
        self._energies = np.zeros(0, dtype=np.float32)
        self._floor = self.options.onset_min_rms / self.options.onset_ratio
        self._priming = _PRIMING_BLOCKS
        self._loud = 0
        self._quiet = 0
        self.sounding = False
        self.onsets = 0
        self.since_s = 0.0
        """With a change: how long before the end of the frame the new state began."""

    @property
    def floor(self) -> float:
        """The line's noise floor (PCM16 RMS): its quietest recent 20 ms, rising slowly."""
        return self._floor

    def energies(self, pcm16: bytes, sample_rate: int = 16000) -> tuple[np.ndarray, int]:
        """Each 20 ms block's sum of squares, and the samples per block.

        One block if the frame is not whole blocks. The array is this detector's own,
        overwritten by the next call: nothing is allocated per frame.
        """
        samples = np.frombuffer(pcm16, dtype="<i2")
        n = samples.size
        if n == 0:
            return self._energies[:0], 1
        if self._buf.size != n:
            self._buf = np.zeros(n, dtype=np.float32)
        buf = self._buf
        np.copyto(buf, samples, casting="unsafe")
        block = sample_rate // 50
        whole = block > 0 and n >= 2 * block and not n % block
        count, size = (n // block, block) if whole else (1, n)
        if self._energies.size != count:
            self._energies = np.zeros(count, dtype=np.float32)
        blocks = buf.reshape(count, size)
        return np.einsum("ij,ij->i", blocks, blocks, out=self._energies), size

    def update(
        self, pcm16: bytes, sample_rate: int = 16000, muted: list[bool] | None = None
    ) -> bool | None:
        """Feed one frame; returns the new state when it changed, else None."""
        return self.judge(*self.energies(pcm16, sample_rate), muted)

    def judge(
        self, energies: np.ndarray, block: int, muted: list[bool] | None = None
    ) -> bool | None:
        """Judge a frame's blocks (:meth:`energies`), in order; the change, if any.

        ``muted``: per block, whether it was muted as the agent's echo: quiet, and no word on
        the line's noise floor.
        """
        change = None
        last = energies.size - 1
        for i in range(energies.size):
            if muted is not None and muted[i]:
                judged = self._quiet_block(last - i)
            else:
                judged = self._judge(math.sqrt(float(energies[i]) / block), last - i)
            if judged is not None:
                change = judged
        return change

    def _quiet_block(self, blocks_after: int) -> bool | None:
        """One quiet block (the floor is the caller's business): a sound ends after enough."""
        o = self.options
        self._quiet += 1
        self._loud = 0
        if self.sounding and self._quiet >= o.release_frames:
            self.sounding = False
            self.since_s = (o.release_frames + blocks_after) * _FRAME_S
            return False
        return None

    def _judge(self, rms: float, blocks_after: int) -> bool | None:
        o = self.options
        floor = self._floor
        if self._priming and rms >= _DIGITAL_SILENCE_RMS:
            # The line's first 100 ms (digital silence before it aside) set its floor
            # until a quieter block comes: a line noisy from pickup is not the caller speaking
            # (from the lowest floor, each burst of noise paused the greeting for the ≈ 1.5 s
            # the floor took to creep up to it). The cost: a caller whose first sound of the
            # call is speech turns the line loud at the next word, not this one.
            self._priming -= 1
            self._floor = max(floor, rms)
            return None
        floor = rms if rms < floor else floor + (rms - floor) * o.floor_rise
        self._floor = floor
        if rms >= o.onset_min_rms and rms >= floor * o.onset_ratio:
            self._loud += 1
            self._quiet = 0
            if not self.sounding and self._loud >= o.onset_frames:
                self.sounding = True
                self.onsets += 1
                self.since_s = (o.onset_frames + blocks_after) * _FRAME_S
                return True
            return None
        return self._quiet_block(blocks_after)


def silero_analyzer(options: VoiceActivity) -> VADAnalyzer:
    """Pipecat's bundled Silero VAD (shared session) with the call's voice-activity options."""
    return SharedSileroVAD(
        params=VADParams(
            confidence=options.confidence,
            start_secs=options.start_s,
            stop_secs=options.stop_s,
            min_volume=options.min_volume,
        )
    )


class CallerVoiceProcessor(VADProcessor):
    """VAD frames and sound onsets for the caller's audio (see the module docstring)."""

    def __init__(
        self,
        options: VoiceActivity | None = None,
        *,
        vad_analyzer: VADAnalyzer | None = None,
        **kwargs,
    ) -> None:
        """Create the stage.

        Args:
            options: VAD and onset tuning.
            vad_analyzer: The VAD (default: pipecat's Silero with ``options``).
            **kwargs: Passed to pipecat's ``VADProcessor``.
        """
        options = options or VoiceActivity()
        # Direct mode: the caller's audio is judged in the task that read it from the socket
        # (the serializer and the recorder's tap before this stage are direct too): no queue
        # and task switch of this stage's own per frame.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(
            vad_analyzer=vad_analyzer or silero_analyzer(options),
            speech_activity_period=_NO_ACTIVITY_FRAMES,
            **kwargs,
        )
        self.sound = SoundOnset(options)
        self.echo: AgentEcho | None = None
        """The transport's agent audio (from ``CallStartedFrame``): its echo is muted."""
        self._muted: list[bool] = []
        self._silence = b""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Mute the agent's echo; run the VAD; announce the line turning loud or quiet."""
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, InputAudioRawFrame):
            energies, block = self.sound.energies(frame.audio, frame.sample_rate)
            muted = self._mute_echo(frame, energies, block) if self.echo is not None else None
            change = self.sound.judge(energies, block, muted)
            # As pipecat's VADProcessor: the audio goes on first, then the VAD judges it.
            await pass_caller_audio(self, frame)
            await self._vad_controller.process_frame(frame)
            if change is not None:
                await self.push_frame(CallerSoundFrame(sounding=change, since_s=self.sound.since_s))
            return
        if isinstance(frame, CallStartedFrame) and self.sound.options.echo_suppression:
            self.echo = frame.agent_echo
        await super().process_frame(frame, direction)

    def _mute_echo(
        self, frame: InputAudioRawFrame, energies: np.ndarray, block: int
    ) -> list[bool] | None:
        """Replace the 20 ms blocks that carry only the agent's echo by silence (in the frame).

        The VAD, the onset, the STT and the answering-machine detector after this stage hear
        the silence; the recording (before it) keeps the line as it was. ``energies`` and
        ``block``: the frame's blocks (``SoundOnset.energies``). Returns which blocks were muted
        (None: none; the list is reused from frame to frame).
        """
        echo = self.echo
        if echo is None or not echo.agent_audible():
            return None
        audio = frame.audio
        if len(self._muted) != energies.size:
            self._muted = [False] * energies.size
        muted = self._muted
        for i in range(energies.size):
            muted[i] = echo.is_echo(math.sqrt(float(energies[i]) / block))  # learns too
        if not any(muted) or not echo.heard_over(self.sound.floor):
            return None
        if len(self._silence) != len(audio):
            self._silence = bytes(len(audio))
        if all(muted):
            frame.audio = self._silence
            return muted
        out = bytearray(audio)
        width = len(audio) // energies.size
        for i, mute in enumerate(muted):
            if mute:
                out[i * width : (i + 1) * width] = self._silence[:width]
        frame.audio = bytes(out)
        return muted
