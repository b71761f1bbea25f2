"""The server's own ears: caller audio in, 16 kHz PCM16 and 32 ms speech frames out.

``AudioInput`` turns what the client declared (``encoding=linear16`` at any ``sample_rate``,
or ``encoding=mulaw&sample_rate=8000``) into 16 kHz PCM16 with voiceagent's own μ-law table
and stateful soxr resampler. ``SpeechDetector`` scores it with pipecat's bundled Silero VAD
(``silero_vad.onnx``) on voiceagent's shared session, the streams' windows batched: one small
recurrent state per stream. pipecat's ``SileroVADAnalyzer`` would load a session per stream
(≈10 MB each) and run each window alone, too much for the hundred streams of a load test;
like pipecat's analyzer it resets the state every two seconds of clear non-speech (the model
drifts in silence).
"""

from __future__ import annotations

import numpy as np

from bench.fakes.deepgram_live.segmenter import SpeechFrame
from voiceagent.processors.silero import CallModel, SileroBatch, silero_session
from voiceagent.transports.twilio.codec import StreamResampler, ulaw_to_pcm16

RATE = 16000
FRAME_SAMPLES = 512  # Silero's window at 16 kHz: 32 ms
FRAME_S = FRAME_SAMPLES / RATE
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
    """pipecat's bundled Silero VAD for the whole server: voiceagent's shared session, batched.

    The windows of every stream that are due together run as one batch
    (:class:`voiceagent.processors.silero.SileroBatch`, on the event loop): the same
    probabilities as a run per window (``tests/processors/test_silero.py``), at a fraction of
    the CPU — a run per window and stream took most of a core at 60 load-test streams.
    """

    def __init__(self) -> None:
        self.session = silero_session()
        self._batch: SileroBatch | None = None

    def stream(self) -> CallModel:
        """One stream's recurrent state and context."""
        return CallModel(self.session)

    async def score(self, stream: CallModel, window: np.ndarray) -> float:
        """Speech probability of one 512-sample window of ``stream``, in the next batch."""
        if self._batch is None:  # made on the server's event loop
            self._batch = SileroBatch(self.session)
        return float(np.asarray(await self._batch.probability(stream, window, RATE)).flat[0])


class SpeechDetector:
    """One stream's speech frames, on its audio timeline."""

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self._stream = model.stream()
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames = 0
        self._since_reset = 0
        self._quiet = 0

    @property
    def position_s(self) -> float:
        """End of the last scored frame."""
        return self._frames * FRAME_S

    async def feed(self, pcm16k: bytes) -> list[SpeechFrame]:
        """Score every whole 32 ms frame the new audio completes (batched with other streams)."""
        return [
            self._judge(await self._model.score(self._stream, window))
            for window in self._windows(pcm16k)
        ]

    def feed_alone(self, pcm16k: bytes) -> list[SpeechFrame]:
        """As :meth:`feed`, each window run on its own (no event loop needed)."""
        return [self._judge(float(self._stream(w, RATE)[0][0])) for w in self._windows(pcm16k)]

    def _windows(self, pcm16k: bytes) -> list[np.ndarray]:
        samples = np.frombuffer(pcm16k, dtype="<i2").astype(np.float32) * (1.0 / 32768.0)
        buffered = np.concatenate((self._pending, samples)) if self._pending.size else samples
        whole = len(buffered) // FRAME_SAMPLES
        self._pending = buffered[whole * FRAME_SAMPLES :].copy()
        return [buffered[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(whole)]

    def _judge(self, probability: float) -> SpeechFrame:
        start = self._frames * FRAME_S
        self._frames += 1
        self._since_reset += 1
        self._quiet = self._quiet + 1 if probability < _RESET_QUIET else 0
        if self._since_reset >= _RESET_AFTER_FRAMES and self._quiet >= _RESET_QUIET_FRAMES:
            self._stream.reset_states()  # the model drifts in silence, as pipecat's resets
            self._since_reset = self._quiet = 0
        return SpeechFrame(start, start + FRAME_S, probability >= _VOICED)


def voiced_seconds(pcm: bytes, model: SileroModel, *, sample_rate: int = 8000) -> float:
    """Voiced audio in a PCM16 clip as this detector hears it (a scripted line's ``voiced_s``)."""
    detector = SpeechDetector(model)
    audio = AudioInput("linear16", sample_rate)
    frames = detector.feed_alone(audio.to_pcm16k(pcm) + audio.flush())
    return sum(f.end - f.start for f in frames if f.voiced)
