"""End to end: a call over the real server and the caller emulator is persisted.

The echo agent (see e2e_harness) answers each caller line with a 440 Hz tone spoken as a real
TTS turn; after the call the archive holds the completed call, the agent's heard turns and
a stereo WAV with the caller's speech on the left and the agent's tone on the right, where
the caller heard it.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np

from voiceagent.cli import main
from voiceagent.emulator.caller import CallerEmulator
from voiceagent.emulator.script import CallerLine
from voiceagent.settings import StorageSettings
from voiceagent.storage import open_store

from .e2e_harness import (
    SPEECH_RMS,
    EchoFactory,
    band_power,
    caller_line_pcm8k,
    loopback_settings,
    rms,
    serving,
)

CALL_TIMEOUT_S = 40.0


async def test_a_call_and_its_audio_are_persisted(tmp_path: Path, capsys) -> None:
    line = caller_line_pcm8k("Hello, I would like to check on my order please.", tmp_path)
    settings = loopback_settings(storage={"dir": tmp_path / "store"})
    caller = CallerEmulator("", custom_parameters={"From": "+15550100", "To": "+15550199"})
    async with serving(settings, EchoFactory()) as server:
        caller.url = server.media_url
        async with asyncio.timeout(CALL_TIMEOUT_S):
            report = await caller.run(
                [CallerLine(line, pause_after_s=1.0, text="check on my order")],
                lead_in_s=0.3,
                tail_s=1.0,
                max_wait_reply_s=8.0,
            )
    # Leaving ``serving`` stopped the server, which closed the archive (all writes done).
    assert report.turns[0].latency_ms is not None

    store = open_store(StorageSettings(dir=tmp_path / "store"), create=False)
    try:
        (summary,) = store.recent_calls()
        detail = store.find_call(report.call_sid)
    finally:
        store.close()
    assert detail is not None
    call = detail.call
    assert (call.call_sid, call.stream_sid) == (report.call_sid, report.stream_sid)
    assert (call.from_number, call.to_number, call.end_reason) == (
        "+15550100",
        "+15550199",
        "caller_hung_up",
    )
    assert call.duration_s is not None and abs(call.duration_s - report.duration_s) < 1.0
    assert call.write_errors == 0
    (agent,) = [e for e in detail.events if e.kind == "agent"]
    assert agent.text == agent.full_text == "echo 1 part 1. echo 1 part 2."
    assert agent.interrupted is False

    assert call.audio_path is not None and Path(call.audio_path).parent.parent.name == "recordings"
    with wave.open(call.audio_path, "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert abs(samples.size / 2 / 8000 - call.duration_s) < 0.1
    assert call.audio_seconds == samples.size / 2 / 8000
    left, right = samples[0::2].tobytes(), samples[1::2].tobytes()
    assert rms(left) > SPEECH_RMS / 4  # the caller's line
    assert band_power(right, 440.0) > 0.8 * band_power(right, 2000.0, width_hz=2001.0)
    # The agent's tone is where the caller heard it, for as long (0.8 s).
    loud = np.flatnonzero(np.abs(samples[1::2]) > 1000)
    heard_at = report.turns[0].first_agent_audio_s
    assert abs(loud[0] / 8000 - heard_at) < 0.3
    assert abs((loud[-1] - loud[0]) / 8000 - 0.8) < 0.05

    assert main(["calls", "--dir", str(tmp_path / "store"), "show", report.call_sid]) == 0
    shown = capsys.readouterr().out
    assert "echo 1 part 1. echo 1 part 2." in shown and call.audio_path in shown
