"""Silero on one session per process, batched across calls: it hears what pipecat's own hears."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams

from voiceagent.processors.silero import (
    CallModel,
    SharedSileroVAD,
    SileroBatch,
    shared_batch,
    silero_session,
)

RATE = 16000
FRAME = RATE // 50 * 2  # bytes of one 20 ms frame
CLIPS = [
    Path("/usr/share/asterisk/sounds/en/agent-pass.wav"),
    Path("/usr/share/asterisk/sounds/en/vm-intro.wav"),
    Path("/usr/share/asterisk/sounds/en/conf-getpin.wav"),
]
needs_clips = pytest.mark.skipif(
    not all(c.exists() for c in CLIPS), reason="Debian asterisk-core-sounds-en-wav not installed"
)
PARAMS = VADParams(confidence=0.7, start_secs=0.15, stop_secs=0.2, min_volume=0.6)


def caller_line(clip: Path) -> bytes:
    """A human prompt at 16 kHz with a second of silence after it."""
    with wave.open(str(clip)) as w:
        pcm8 = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    pcm = np.repeat(pcm8, 2).astype(np.int16)
    return np.concatenate([pcm, np.zeros(RATE, np.int16)]).tobytes()


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


def analyzer(cls: type = SharedSileroVAD):
    vad = cls(params=PARAMS)
    vad.set_sample_rate(RATE)
    return vad


def test_every_call_shares_one_onnx_session_and_keeps_its_own_state():
    a, b = SharedSileroVAD(), SharedSileroVAD()
    assert a._model.session is b._model.session is silero_session()
    assert a._model._state is not b._model._state


@needs_clips
def test_the_shared_session_hears_exactly_what_pipecats_own_analyzer_hears():
    pcm = caller_line(CLIPS[0])
    ours, theirs = analyzer(), analyzer(SileroVADAnalyzer)
    window = 512 * 2
    chunks = [pcm[i : i + window] for i in range(0, len(pcm) - window, window)]
    mine = [np.asarray(ours.voice_confidence(c)).item() for c in chunks]
    pipecat = [np.asarray(theirs.voice_confidence(c)).item() for c in chunks]
    assert mine == pipecat
    assert max(mine) > 0.9  # it is speech


@needs_clips
async def test_three_calls_batched_together_hear_what_pipecat_hears_on_each_alone():
    lines = [frames(caller_line(c)) for c in CLIPS]
    ours = [analyzer() for _ in lines]
    theirs = [analyzer(SileroVADAnalyzer) for _ in lines]
    batch = shared_batch()
    runs, windows = batch.runs, batch.windows

    async def call(vad, line):  # one call's voice stage: a frame at a time, in order
        return [await vad.analyze_audio(f) for f in line]

    heard = await asyncio.gather(*(call(v, line) for v, line in zip(ours, lines, strict=True)))
    for vad, line, states in zip(theirs, lines, heard, strict=True):
        assert states == [vad._run_analyzer(f) for f in line]  # pipecat's, on its own session
    assert {s.name for s in heard[0]} >= {"QUIET", "STARTING", "SPEAKING", "STOPPING"}
    run, batched = batch.runs - runs, batch.windows - windows
    assert batched == sum(len(b"".join(line)) // (512 * 2) for line in lines)
    assert run < batched / 2  # the calls' windows went through together


async def test_a_batched_window_gets_the_probability_a_run_of_its_own_gets():
    rng = np.random.default_rng(7)
    windows = [(rng.standard_normal(512) * 0.2).astype(np.float32) for _ in range(5)]
    alone = [CallModel(silero_session()) for _ in windows]
    together = [CallModel(silero_session()) for _ in windows]
    batch = SileroBatch(silero_session(), wait_s=0.0)
    for _ in range(3):  # the calls' states carry over from window to window
        expected = [m(w, RATE) for m, w in zip(alone, windows, strict=True)]
        got = await asyncio.gather(
            *(batch.probability(m, w, RATE) for m, w in zip(together, windows, strict=True))
        )
        assert [e.item() for e in expected] == [g.item() for g in got]
    assert batch.runs == 3 and batch.windows == 15


async def test_a_call_that_ended_mid_batch_leaves_the_others_theirs():
    batch = SileroBatch(silero_session(), wait_s=0.01)
    window = np.zeros(512, np.float32)
    gone, staying = CallModel(silero_session()), CallModel(silero_session())
    ended = asyncio.ensure_future(batch.probability(gone, window, RATE))
    kept = asyncio.ensure_future(batch.probability(staying, window, RATE))
    await asyncio.sleep(0)
    ended.cancel()
    assert (await kept).shape == (1,)
    assert batch.windows == 1


async def test_a_window_of_the_wrong_size_is_refused_before_it_joins_a_batch():
    batch = SileroBatch(silero_session())
    with pytest.raises(ValueError, match="512 samples"):
        await batch.probability(CallModel(silero_session()), np.zeros(500, np.float32), RATE)
    assert batch.windows == 0


async def test_three_calls_windows_are_one_run_on_the_loop_and_share_a_failure():
    """The batch runs on the event loop, once for the windows due together; a failed run
    fails each of its windows (each call's VAD then hears no speech), not the loop."""
    import threading

    session = silero_session()
    threads: list[threading.Thread] = []
    broken = False

    class WatchedSession:
        def run(self, *args, **kwargs):
            threads.append(threading.current_thread())
            if broken:
                raise RuntimeError("onnx fell over")
            return session.run(*args, **kwargs)

    batch = SileroBatch(WatchedSession(), wait_s=0.0)  # type: ignore[arg-type]
    models = [CallModel(session) for _ in range(3)]
    window = np.zeros(512, np.float32)
    await asyncio.gather(*(batch.probability(m, window, RATE) for m in models))
    assert batch.runs == 1 and threads == [threading.current_thread()]
    broken = True
    results = await asyncio.gather(
        *(batch.probability(m, window, RATE) for m in models), return_exceptions=True
    )
    assert [str(r) for r in results] == ["onnx fell over"] * 3
    assert batch.runs == 1
