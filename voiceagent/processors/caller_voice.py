"""The caller's voice: pipecat's VAD plus a frame-fast sound onset, in one stage.

Silero (pipecat's ``VADProcessor``) needs ``start_secs`` of confident speech plus its volume
ramp: ≈ 300 ms from the caller's first sound to ``VADUserStartedSpeakingFrame``. That is too
late to stop the agent's audio at a barge-in, or to hold a reply that would start over a caller
who resumes. ``CallerVoiceProcessor`` also watches the energy of every 20 ms frame against an
adaptive noise floor (``SoundOnset``) and pushes ``CallerSoundFrame(sounding=True)`` after
``onset_frames`` loud frames (40 ms), ``sounding=False`` after ``release_frames`` quiet ones.
The sound only times and pauses; what it was is decided by the VAD, the STT and the turn engine.

Frames: consumes ``InputAudioRawFrame`` (forwarded: the STT needs it); emits
``VADUserStartedSpeakingFrame`` / ``VADUserStoppedSpeakingFrame`` (pipecat's) and
``CallerSoundFrame``. Pipecat's periodic ``UserSpeakingFrame`` is not sent (nothing reads it).
Per frame: one dot product on a preallocated buffer, no allocation, no logging.
"""

from __future__ import annotations

import math
import threading
from importlib import resources

import numpy as np
import onnxruntime
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection

from voiceagent.frames import CallerSoundFrame
from voiceagent.turns.options import VoiceActivity

_FRAME_S = 0.02
_NO_ACTIVITY_FRAMES = 1e9
"""``speech_activity_period`` that never comes: no ``UserSpeakingFrame`` flood."""


class SoundOnset:
    """Is the caller's line loud? Energy against a floor that falls at once and rises slowly."""

    def __init__(self, options: VoiceActivity | None = None) -> None:
        self.options = options or VoiceActivity()
        self._buf = np.zeros(0, dtype=np.float32)
        self._floor = self.options.onset_min_rms / self.options.onset_ratio
        self._loud = 0
        self._quiet = 0
        self.sounding = False
        self.onsets = 0

    def update(self, pcm16: bytes) -> bool | None:
        """Feed one frame; returns the new state when it changed, else None."""
        samples = np.frombuffer(pcm16, dtype="<i2")
        n = samples.size
        if n == 0:
            return None
        if self._buf.size != n:
            self._buf = np.zeros(n, dtype=np.float32)
        buf = self._buf
        np.copyto(buf, samples, casting="unsafe")
        rms = math.sqrt(float(np.dot(buf, buf)) / n)
        o = self.options
        floor = self._floor
        floor = rms if rms < floor else floor + (rms - floor) * o.floor_rise
        self._floor = floor
        if rms >= o.onset_min_rms and rms >= floor * o.onset_ratio:
            self._loud += 1
            self._quiet = 0
            if not self.sounding and self._loud >= o.onset_frames:
                self.sounding = True
                self.onsets += 1
                return True
        else:
            self._quiet += 1
            self._loud = 0
            if self.sounding and self._quiet >= o.release_frames:
                self.sounding = False
                return False
        return None


_session: onnxruntime.InferenceSession | None = None
_session_lock = threading.Lock()


def silero_session() -> onnxruntime.InferenceSession:
    """The process's one ONNX session of pipecat's bundled Silero model (made on first use)."""
    global _session
    with _session_lock:
        if _session is None:
            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
            _session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"], sess_options=options
            )
        return _session


class _CallModel(SileroOnnxModel):
    """pipecat's Silero model wrapper on the shared session; the recurrent state is the call's.

    ``__call__`` computes what pipecat's does (the window after the previous window's last
    32 or 64 samples, the state carried over) in one input buffer made per call instead of
    four arrays per window; pipecat's ``reset_states`` still clears both.
    """

    def __init__(self, session: onnxruntime.InferenceSession) -> None:  # no super(): no new session
        self.session = session
        self.sample_rates = [8000, 16000]
        self._input = np.zeros((1, 0), dtype=np.float32)
        self._rate = np.array(0, dtype=np.int64)
        self.reset_states()

    def reset_states(self, batch_size: int = 1) -> None:
        """Forget the call's audio so far (pipecat's reset; the context is zeros again)."""
        super().reset_states(batch_size)
        self._input[:] = 0.0

    def __call__(self, x: np.ndarray, sr: int) -> np.ndarray:
        """The speech probability of one window (``x``: float32 samples, 512 at 16 kHz)."""
        if sr not in (8000, 16000):
            raise ValueError(f"Silero runs at 8000 or 16000 Hz, not {sr}")
        context = 64 if sr == 16000 else 32
        size = context + (512 if sr == 16000 else 256)
        buf = self._input
        if buf.shape[1] != size or self._last_sr != sr:
            super().reset_states()
            buf = self._input = np.zeros((1, size), dtype=np.float32)
            self._rate = np.array(sr, dtype=np.int64)
        if x.shape[-1] != size - context:
            raise ValueError(f"Silero needs {size - context} samples at {sr} Hz, got {x.shape[-1]}")
        buf[0, context:] = x
        out, self._state = self.session.run(
            None, {"input": buf, "state": self._state, "sr": self._rate}
        )
        buf[0, :context] = buf[0, -context:]
        self._last_sr = sr
        return out


class SharedSileroVAD(SileroVADAnalyzer):
    """pipecat's Silero VAD analyzer on one ONNX session shared by every call of the process.

    pipecat's analyzer builds an ONNX session per instance, i.e. per call: about 40 ms on the
    event loop at every call's start and 10 MB each (measured, 2-core machine). The session is
    stateless — the model's recurrent state is an input — so one serves all calls and each call
    keeps only its own state. This sets the three attributes pipecat's ``__init__`` would
    (``_model`` and the reset counters) instead of running it; pipecat is pinned to 1.14.
    """

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None):
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        self._model = _CallModel(silero_session())
        self._windows_since_reset = 0
        self._low_confidence_windows = 0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Judge ``buffer`` on the event loop, as pipecat's thread would (no hop per frame).

        pipecat hands every 20 ms frame to a thread of the call's own, even a frame that
        completes no 32 ms window; the hand-over (a future, two thread wake-ups, the loop's
        self-pipe) added a good part of the analysis' own CPU (``bench/caller_audio.py``), and
        a server running as many workers as cores has no idle core for that thread anyway.
        """
        return self._run_analyzer(buffer)


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
        super().__init__(
            vad_analyzer=vad_analyzer or silero_analyzer(options),
            speech_activity_period=_NO_ACTIVITY_FRAMES,
            **kwargs,
        )
        self.sound = SoundOnset(options)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Run the VAD; announce the line turning loud or quiet."""
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, InputAudioRawFrame):
            change = self.sound.update(frame.audio)
            await super().process_frame(frame, direction)
            if change is not None:
                o = self.sound.options
                frames = o.onset_frames if change else o.release_frames
                await self.push_frame(CallerSoundFrame(sounding=change, since_s=frames * _FRAME_S))
            return
        await super().process_frame(frame, direction)
