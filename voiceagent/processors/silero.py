"""pipecat's Silero VAD on one ONNX session per process, its windows batched across calls.

pipecat's ``SileroVADAnalyzer`` builds an ONNX session per instance (per call: a session's
start-up time on the event loop and its memory, every call) and hands every 20 ms frame to a
thread of the call's own. Here:

- One session serves every call (:func:`silero_session`): it is stateless — the model's
  recurrent state is an input — so each call keeps only its state and its last samples
  (:class:`CallModel`).
- The windows of all calls that are due within ``BATCH_WAIT_S`` of each other go through the
  session as one batch (:class:`SileroBatch`): a batched run costs a fraction per window of
  separate runs and gives bit for bit the same probabilities (``tests/processors/test_silero.py``).
- The batch runs on the event loop, between two callbacks: ≈ 60 µs per window (0.5 ms for the
  8 windows of a typical batch at 40 calls a worker, 1.8 ms for 32). pipecat hands each window
  to a thread; so did this module, one hop per batch, until the hop itself (a future, two
  thread wake-ups, the loop's self-pipe, the GIL passed back and forth) was measured at a
  sixth of the caller audio chain's CPU (``bench/caller_audio.py --calls 40``: 227–250 →
  196–198 µs per media message) and the thread bought no parallelism: ``voiceagent serve``
  runs a worker per core, each core busy with its own loop.
- :class:`SharedSileroVAD` is pipecat's analyzer otherwise: its volume gate, smoothing,
  start/stop counting and model resets run unchanged (pipecat is pinned to 1.14); the volume
  it gates on is measured as a stream (:mod:`voiceagent.processors.loudness`) instead of
  from scratch every window.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from importlib import resources

import numpy as np
import onnxruntime
from loguru import logger
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from voiceagent.processors.loudness import StreamLoudness

BATCH_WAIT_S = 0.005
"""Longest a window waits for other calls' windows to join its batch."""
RATES = {16000: (512, 64), 8000: (256, 32)}
"""Silero's window and context, in samples, per sample rate."""

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


class CallModel(SileroOnnxModel):
    """pipecat's Silero model wrapper on the shared session; the recurrent state is the call's.

    Computes what pipecat's does (each window after the previous window's last samples, the
    state carried over) in one input buffer made per call instead of four arrays per window;
    pipecat's ``reset_states`` still clears both. :meth:`load` and :meth:`advance` are the two
    halves of a run, for :class:`SileroBatch`.
    """

    def __init__(self, session: onnxruntime.InferenceSession) -> None:  # no super(): no session
        self.session = session
        self.sample_rates = list(RATES)
        self._input = np.zeros((1, 0), dtype=np.float32)
        self._context = 0
        self.rate = np.array(0, dtype=np.int64)
        self.reset_states()

    def reset_states(self, batch_size: int = 1) -> None:
        """Forget the call's audio so far (pipecat's reset; the context is zeros again)."""
        super().reset_states(batch_size)
        self._input[:] = 0.0

    @property
    def state(self) -> np.ndarray:
        """The recurrent state the next window starts from."""
        return self._state

    @property
    def row(self) -> np.ndarray:
        """The model input of the window :meth:`load` placed: ``(1, context + window)``."""
        return self._input

    def load(self, x: np.ndarray, sr: int) -> np.ndarray:
        """Place window ``x`` (float32 samples) after the context; the model's input row.

        Raises:
            ValueError: An unsupported rate or a window of the wrong size.
        """
        if sr not in RATES:
            raise ValueError(f"Silero runs at 8000 or 16000 Hz, not {sr}")
        window, context = RATES[sr]
        if self._input.shape[1] != window + context or self._last_sr != sr:
            super().reset_states()
            self._input = np.zeros((1, window + context), dtype=np.float32)
            self._context = context
            self.rate = np.array(sr, dtype=np.int64)
        if x.shape[-1] != window:
            raise ValueError(f"Silero needs {window} samples at {sr} Hz, got {x.shape[-1]}")
        self._input[0, context:] = x
        return self._input

    def advance(self, state: np.ndarray) -> None:
        """The loaded window was run: keep its state, and its last samples as the context."""
        self._state = state
        buf, context = self._input, self._context
        buf[0, :context] = buf[0, -context:]
        self._last_sr = int(self.rate)

    def __call__(self, x: np.ndarray, sr: int) -> np.ndarray:
        """The speech probability of one window (pipecat's call, on the shared session)."""
        row = self.load(x, sr)
        out, state = self.session.run(None, {"input": row, "state": self._state, "sr": self.rate})
        self.advance(state)
        return out


class SileroBatch:
    """Runs the windows of every call that are due together as one batch (one event loop)."""

    def __init__(self, session: onnxruntime.InferenceSession, wait_s: float = BATCH_WAIT_S):
        """Create the batcher.

        Args:
            session: The Silero session (:func:`silero_session`).
            wait_s: Longest a window waits for others (0: until the loop's next pass).
        """
        self.session = session
        self.wait_s = wait_s
        self.runs = 0
        self.windows = 0
        self._pending: list[tuple[CallModel, int, asyncio.Future[np.ndarray]]] = []
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None

    async def probability(self, model: CallModel, x: np.ndarray, sr: int) -> np.ndarray:
        """Run window ``x`` of ``model``'s call in the next batch; its speech probability.

        Raises:
            ValueError: An unsupported rate or a window of the wrong size.
        """
        if any(m is model for m, _, _ in self._pending):
            self._run()  # one window per call and batch: the call's state is an input
        model.load(x, sr)
        future = asyncio.get_running_loop().create_future()
        self._pending.append((model, sr, future))
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = (
                loop.call_later(self.wait_s, self._run)
                if self.wait_s > 0
                else loop.call_soon(self._run)
            )
        return await future

    def _run(self) -> None:
        """Run the pending windows, one batch per sample rate, and answer their futures."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = [p for p in self._pending if not p[2].done()]  # a call that ended
        self._pending = []
        for sr in {sr for _, sr, _ in pending}:
            group = [(m, f) for m, s, f in pending if s == sr]
            try:
                inputs = np.concatenate([m.row for m, _ in group])
                states = np.concatenate([m.state for m, _ in group], axis=1)
                out, state = self.session.run(
                    None, {"input": inputs, "state": states, "sr": group[0][0].rate}
                )
            except Exception as e:  # each window of the batch gets the error: none waits forever
                for _, future in group:
                    future.set_exception(e)
                continue
            self.runs += 1
            self.windows += len(group)
            for i, (model, future) in enumerate(group):
                model.advance(state[:, i : i + 1])
                future.set_result(out[i])


_BATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SileroBatch] = (
    weakref.WeakKeyDictionary()
)


def shared_batch() -> SileroBatch:
    """The batch every call's VAD on the running event loop shares."""
    loop = asyncio.get_running_loop()
    batch = _BATCHES.get(loop)
    if batch is None:
        batch = _BATCHES[loop] = SileroBatch(silero_session())
    return batch


class SharedSileroVAD(SileroVADAnalyzer):
    """pipecat's Silero VAD analyzer on the shared session, its windows batched across calls.

    This sets the three attributes pipecat's ``__init__`` would (``_model`` and the reset
    counters) instead of running it (it would build a session). ``analyze_audio`` waits for
    each completed window's probability from the shared :class:`SileroBatch`, then lets
    pipecat's own ``_run_analyzer`` take the window, its ``voice_confidence`` answering with
    that probability; called directly, ``voice_confidence`` runs the model alone, as pipecat's.
    """

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None):
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        self._model = CallModel(silero_session())
        self._volume_tracker = StreamLoudness()  # pipecat's re-measures 400 ms every window
        self._windows_since_reset = 0
        self._low_confidence_windows = 0
        self._batched: np.ndarray | None = None
        self._batch: SileroBatch | None = None  # the loop's, found at the first window

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Judge ``buffer`` (any length): one batched model run per window it completes."""
        state = self._vad_state
        need = self._vad_frames_num_bytes
        while buffer:
            take = need - len(self._vad_buffer)
            if take > len(buffer):
                return self._run_analyzer(buffer)  # completes no window: only buffered
            head, buffer = buffer[:take], buffer[take:]
            window = np.frombuffer(self._vad_buffer + head, np.int16)
            samples = window.astype(np.float32) / 32768.0  # as pipecat's voice_confidence
            batch = self._batch
            if batch is None:
                batch = self._batch = shared_batch()
            try:
                self._batched = await batch.probability(self._model, samples, self.sample_rate)
            except Exception as e:  # as pipecat's: no speech in a window the model failed on
                logger.error(f"Error analyzing audio with Silero VAD: {e}")
                self._batched = np.zeros(1, dtype=np.float32)
            state = self._run_analyzer(head)
        return state

    def voice_confidence(self, buffer: bytes) -> float:
        """The window's speech probability (the batch's, when ``analyze_audio`` asked it)."""
        confidence, self._batched = self._batched, None
        if confidence is None:
            return super().voice_confidence(buffer)
        self._maybe_reset_model(confidence.item())
        return confidence  # type: ignore[return-value]  # pipecat's returns the array too
