"""The server's own ears: caller audio in, 16 kHz PCM16 and 32 ms speech frames out.

``AudioInput`` turns what the client declared (``encoding=linear16`` at any ``sample_rate``,
or ``encoding=mulaw&sample_rate=8000``) into 16 kHz PCM16 with voiceagent's own μ-law table
and stateful soxr resampler. ``SpeechDetector`` scores it with pipecat's bundled Silero VAD
(``silero_vad.onnx``): one ONNX session for the whole server, one small recurrent state per
stream. pipecat's ``SileroVADAnalyzer`` would load a session per stream (≈10 MB each), too
much for the hundred streams of a load test, hence this thin wrapper; like pipecat's analyzer
it resets the state every two seconds of clear non-speech (the model drifts in silence).
"""

from __future__ import annotations

import importlib.resources

import numpy as np

from bench.fakes.deepgram_live.segmenter import SpeechFrame
from voiceagent.transports.twilio.codec import StreamResampler, ulaw_to_pcm16

RATE = 16000
FRAME_SAMPLES = 512  # Silero's window at 16 kHz: 32 ms
FRAME_S = FRAME_SAMPLES / RATE
_CONTEXT = 64
_VOICED = 0.5
_RESET_AFTER_FRAMES = int(2.0 / FRAME_S)
_RESET_QUIET = 0.1
_RESET_QUIET_FRAMES = 5


class AudioFormatError(ValueError):
    """The declared encoding/sample rate cannot be served."""


class AudioInput:
    """Client audio as declared in the query → 16 kHz PCM16 mono."""

    def __init__(self, encoding: str, sample_rate: int) -> None:
        if encoding not in ("linear16", "mulaw"):
            raise AudioFormatError(f"encoding={encoding!r} is not served (linear16 or mulaw)")
        if encoding == "mulaw" and sample_rate != 8000:
            raise AudioFormatError("encoding=mulaw needs sample_rate=8000")
        if not 8000 <= sample_rate <= 48000:
            raise AudioFormatError(f"sample_rate={sample_rate} is outside 8000..48000")
        self.encoding = encoding
        self.sample_rate = sample_rate
        self._resampler = StreamResampler(sample_rate, RATE)
        self._odd = b""

    def bytes_per_s(self) -> int:
        """Bytes of client audio per second (for the stream's duration)."""
        return self.sample_rate * (1 if self.encoding == "mulaw" else 2)

    def to_pcm16k(self, data: bytes) -> bytes:
        """Decode one binary message (a split PCM16 sample is kept for the next one)."""
        if self.encoding == "mulaw":
            pcm = ulaw_to_pcm16(data)
        else:
            data = self._odd + data
            cut = len(data) // 2 * 2
            pcm, self._odd = data[:cut], data[cut:]
        return self._resampler.resample(pcm)

    def flush(self) -> bytes:
        """The resampler's last samples (at the end of a clip)."""
        return self._resampler.flush()


class SileroModel:
    """pipecat's bundled Silero VAD, loaded once per server."""

    def __init__(self) -> None:
        import onnxruntime

        path = importlib.resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"], sess_options=options
        )
        self._sr = np.array(RATE, dtype=np.int64)

    def score(self, window: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        """Speech probability of one 64 + 512 sample window and the next recurrent state."""
        out, next_state = self.session.run(None, {"input": window, "state": state, "sr": self._sr})
        return float(out[0][0]), next_state


class SpeechDetector:
    """One stream's speech frames, on its audio timeline."""

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames = 0
        self._reset()

    def _reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)
        self._since_reset = 0
        self._quiet = 0

    @property
    def position_s(self) -> float:
        """End of the last scored frame."""
        return self._frames * FRAME_S

    def feed(self, pcm16k: bytes) -> list[SpeechFrame]:
        """Score every whole 32 ms frame the new audio completes."""
        samples = np.frombuffer(pcm16k, dtype="<i2").astype(np.float32) * (1.0 / 32768.0)
        buffered = np.concatenate((self._pending, samples)) if self._pending.size else samples
        whole = len(buffered) // FRAME_SAMPLES
        frames = []
        for i in range(whole):
            chunk = buffered[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES][None, :]
            window = np.concatenate((self._context, chunk), axis=1)
            probability, self._state = self._model.score(window, self._state)
            self._context = window[:, -_CONTEXT:]
            start = self._frames * FRAME_S
            self._frames += 1
            frames.append(SpeechFrame(start, start + FRAME_S, probability >= _VOICED))
            self._maybe_reset(probability)
        self._pending = buffered[whole * FRAME_SAMPLES :].copy()
        return frames

    def _maybe_reset(self, probability: float) -> None:
        self._since_reset += 1
        self._quiet = self._quiet + 1 if probability < _RESET_QUIET else 0
        if self._since_reset >= _RESET_AFTER_FRAMES and self._quiet >= _RESET_QUIET_FRAMES:
            self._reset()


def voiced_seconds(pcm: bytes, model: SileroModel, *, sample_rate: int = 8000) -> float:
    """Voiced audio in a PCM16 clip as this detector hears it (a scripted line's ``voiced_s``)."""
    detector = SpeechDetector(model)
    audio = AudioInput("linear16", sample_rate)
    frames = detector.feed(audio.to_pcm16k(pcm) + audio.flush())
    return sum(f.end - f.start for f in frames if f.voiced)
