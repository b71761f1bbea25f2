"""The call recorder: a call through the real Twilio transport, recorded to disk.

Each test runs ``serializer → CallerTap → AgentTap → TwilioOutput`` (the server's shape, no
stages in between: the test plays the stages' frames itself) in a real PipelineWorker on a
ManualClock, with a scripted Twilio side that plays the agent's audio in real time and
echoes marks, then reads the SQLite rows and the WAV back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from loguru import logger
from pipecat.frames.frames import (
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.workers.runner import WorkerRunner

from tests.twilio_marks import due_marks
from voiceagent.clock import ManualClock
from voiceagent.frames import (
    AnswerVerdictFrame,
    PlaybackPauseFrame,
    PlaybackResumeFrame,
    ProviderSwitchedFrame,
    TurnMetricsFrame,
    UserTurnCommittedFrame,
)
from voiceagent.processors.recorder import recorder_taps
from voiceagent.settings import StorageSettings
from voiceagent.storage import CallArchive, CallDetail, open_store
from voiceagent.transports.twilio.call import TwilioCall
from voiceagent.transports.twilio.codec import pcm16_to_ulaw

CALLER_HZ, AGENT_HZ = 300.0, 1000.0
QUESTION = "Do you have anything on Tuesday?"
OFFER = "Sure, we have openings on Tuesday at two and at four."
ASK = "Which one works for you?"


def transcript(detail, *kinds: str):
    """The call's events of ``kinds`` (default: the transcript's, not marks, audio sent...)."""
    kinds = kinds or ("caller", "revision", "agent", "metrics", "tool")
    return [e for e in detail.events if e.kind in kinds]


def tone(seconds: float, hz: float, rate: int) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return (8000 * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes()


def band_rms(pcm: np.ndarray, hz: float, rate: int = 8000) -> float:
    """RMS of ``pcm`` within ``hz`` ± 50 Hz."""
    if pcm.size == 0:
        return 0.0
    spectrum = np.fft.rfft(pcm.astype(np.float64))
    freqs = np.fft.rfftfreq(pcm.size, 1.0 / rate)
    band = spectrum[(freqs > hz - 50) & (freqs < hz + 50)]
    return float(np.sqrt(2 * np.sum(np.abs(band) ** 2)) / pcm.size)


def agent_speech(segments: list[tuple[str, float]]) -> list:
    """What a TTS pushes: started, each segment's 16 kHz audio (40 ms chunks) then its text."""
    frames: list = [TTSStartedFrame()]
    for text, seconds in segments:
        pcm = tone(seconds, AGENT_HZ, 16000)
        frames += [TTSAudioRawFrame(pcm[i : i + 1280], 16000, 1) for i in range(0, len(pcm), 1280)]
        frames.append(TTSTextFrame(text, "sentence"))
    return [*frames, TTSStoppedFrame()]


class RecordedCall:
    """One call, recorded: a scripted Twilio leg, the transport, the taps, a ManualClock."""

    def __init__(self, archive: CallArchive, call_sid: str = "CA0001") -> None:
        self.clock = ManualClock()
        self.call_sid = call_sid
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.echoed: set[str] = set()
        self.call = TwilioCall(self._send, clock=self.clock)
        self.recording = archive.recording(clock=self.clock)
        first, last = recorder_taps(self.recording, self.call.output)
        self.worker = PipelineWorker(
            Pipeline([self.call.serializer, first, last, self.call.output]),
            cancel_on_idle_timeout=False,
            enable_rtvi=False,
        )
        self._run: asyncio.Task | None = None
        self._seq = 0

    async def _send(self, text: str) -> None:
        self.sent.append((self.clock.now(), json.loads(text)))

    def _twilio(self, event: str, **body: Any) -> str:
        self._seq += 1
        return json.dumps(
            {"event": event, "sequenceNumber": str(self._seq), "streamSid": "MZ0001", **body}
        )

    async def start(self) -> None:
        started = asyncio.Event()

        @self.worker.event_handler("on_pipeline_started")
        async def _started(worker: Any, frame: Any) -> None:
            started.set()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        self._run = asyncio.create_task(runner.run())
        await asyncio.wait_for(started.wait(), 5)
        start = {
            "accountSid": "AC0001",
            "streamSid": "MZ0001",
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"From": "+15550100", "To": "+15550199"},
        }
        await self.call.feed_text(self._twilio("start", start=start))
        await self.settle()

    async def settle(self, rounds: int = 30) -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def caller_says(self, seconds: float) -> None:
        """The caller speaks a tone: one 20 ms media message per 20 ms of call time."""
        ulaw = pcm16_to_ulaw(tone(seconds, CALLER_HZ, 8000))
        for offset in range(0, len(ulaw), 160):
            payload = base64.b64encode(ulaw[offset : offset + 160]).decode()
            await self.call.feed_text(
                self._twilio("media", media={"track": "inbound", "payload": payload})
            )
            await self.wait(0.02)

    async def wait(self, seconds: float, step: float = 0.01) -> None:
        """Call time passes; Twilio plays sent audio and echoes each mark once it played."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            await self.settle(5)
            for name in self._due_marks():
                self.echoed.add(name)
                await self.call.feed_text(self._twilio("mark", mark={"name": name}))
        await self.settle()

    def _due_marks(self) -> list[str]:
        return due_marks(self.sent, self.echoed, self.clock.now())

    def media_sent(self) -> int:
        return sum(1 for _, m in self.sent if m["event"] == "media")

    async def queue(self, *frames: Any) -> None:
        for frame in frames:
            await self.worker.queue_frame(frame)
        await self.settle()

    async def twilio_stops(self) -> None:
        await self.call.feed_text(self._twilio("stop", stop={"callSid": self.call_sid}))
        await asyncio.wait_for(self._run, 5)

    async def cancel(self) -> None:
        await self.worker.cancel()
        await asyncio.wait_for(self._run, 5)


async def stored(archive: CallArchive, call_sid: str = "CA0001") -> CallDetail:
    await archive.close()
    store = open_store(archive.settings, create=False)
    try:
        detail = store.find_call(call_sid)
    finally:
        store.close()
    assert detail is not None
    return detail


def read_wav(path: str) -> tuple[np.ndarray, np.ndarray]:
    with wave.open(path, "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return samples[0::2], samples[1::2]


def loud_span(channel: np.ndarray) -> float:
    """Seconds from the first to the last loud sample."""
    loud = np.flatnonzero(np.abs(channel) > 1000)
    return 0.0 if loud.size == 0 else (loud[-1] - loud[0] + 1) / 8000


def loud_seconds(channel: np.ndarray) -> float:
    """Seconds of loud audio, counted in 10 ms blocks."""
    blocks = channel[: channel.size // 80 * 80].astype(np.float64).reshape(-1, 80)
    return float(np.count_nonzero(np.sqrt((blocks**2).mean(axis=1)) > 2000)) / 100


def between(channel: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    return channel[round(start_s * 8000) : round(end_s * 8000)]


async def test_a_call_is_stored_with_its_transcript_and_a_stereo_wav(tmp_path: Path) -> None:
    """The caller asks for 1 s, the agent answers for 1.2 s (two segments), Twilio stops: the
    WAV is 2.7 s long with the caller on the left and the agent on the right where each spoke,
    and the rows hold the committed question, its metrics and the fully heard answer."""
    archive = CallArchive(StorageSettings(dir=tmp_path))
    call = RecordedCall(archive)
    await call.start()
    await call.caller_says(1.0)
    await call.queue(
        UserTurnCommittedFrame(turn_id=1, text=QUESTION, reason="stable", speculative_hit=True),
        TurnMetricsFrame(turn_id=1, data={"wait_s": 0.31, "speculative_hit": True}),
        *agent_speech([(OFFER, 0.8), (ASK, 0.4)]),
    )
    await call.wait(1.7)
    await call.twilio_stops()

    detail = await stored(archive)
    row = detail.call
    assert (row.call_sid, row.stream_sid, row.from_number, row.to_number) == (
        "CA0001",
        "MZ0001",
        "+15550100",
        "+15550199",
    )
    assert row.end_reason == "caller_hung_up" and row.duration_s is not None
    assert (row.caller_turns, row.agent_turns, row.interrupted_turns, row.write_errors) == (
        1,
        1,
        0,
        0,
    )
    caller, metrics, agent = transcript(detail)
    assert (caller.kind, caller.turn_id, caller.text) == ("caller", 1, QUESTION)
    assert caller.data == {"reason": "stable", "speculative_hit": True}
    assert caller.at_s == pytest.approx(1.0)
    assert (metrics.kind, metrics.data["wait_s"]) == ("metrics", 0.31)
    assert agent.kind == "agent" and agent.interrupted is False
    assert agent.text == agent.full_text == f"{OFFER} {ASK}"
    assert agent.data["started_s"] == pytest.approx(1.0)
    assert 2.2 - 1e-9 <= agent.at_s <= 2.3  # when its last mark came back

    left, right = read_wav(row.audio_path)
    assert row.audio_seconds == left.size / 8000
    assert abs(left.size / 8000 - 2.7) < 0.03
    assert band_rms(between(left, 0.05, 0.95), CALLER_HZ) > 3000
    assert band_rms(between(right, 0.05, 0.95), AGENT_HZ) < 10  # the agent was silent
    assert band_rms(between(right, 1.05, 2.15), AGENT_HZ) > 3000
    assert band_rms(between(left, 1.05, 2.15), CALLER_HZ) < 10
    assert abs(loud_span(right) - 1.2) < 0.05


async def test_a_barge_in_stores_what_was_heard_and_records_only_played_audio(
    tmp_path: Path,
) -> None:
    """The agent is cut 0.5 s into a 1.2 s answer. Twilio had been sent 0.2 s more than it
    played (the output's lead); the clear dropped it, so the WAV holds 0.5 s of agent audio,
    and the row holds the heard prefix next to the full text."""
    archive = CallArchive(StorageSettings(dir=tmp_path))
    call = RecordedCall(archive)
    await call.start()
    await call.queue(*agent_speech([(OFFER, 0.8), (ASK, 0.4)]))
    await call.wait(0.5)
    await call.queue(InterruptionFrame())
    sent_s = call.media_sent() * 0.02
    await call.caller_says(0.6)
    await call.twilio_stops()

    detail = await stored(archive)
    clear, agent = transcript(detail, "clear", "agent")
    assert clear.at_s == pytest.approx(0.5, abs=0.02)
    assert agent.interrupted is True and agent.full_text == f"{OFFER} {ASK}"
    assert agent.text and OFFER.startswith(agent.text) and len(agent.text) < len(OFFER)
    assert agent.data["unheard_text"]
    assert detail.call.interrupted_turns == 1
    # the timeline: the agent's first audio sent (and when it plays), the clear that cut it
    (sent,) = [e for e in detail.events if e.kind == "agent_audio"]
    assert sent.turn_id == agent.turn_id and sent.data["play_at_s"] == pytest.approx(sent.at_s)
    (clear,) = [e for e in detail.events if e.kind == "clear"]
    assert clear.at_s == pytest.approx(sent.at_s + 0.5, abs=0.03)
    assert clear.data["frames_dropped"] == pytest.approx(10, abs=1)  # the 0.2 s lead

    left, right = read_wav(detail.call.audio_path)
    agent_s = loud_span(right)
    assert abs(sent_s - 0.7) < 0.03  # what went out on the socket...
    assert abs(agent_s - 0.5) < 0.03  # ...and what played before the clear
    assert band_rms(between(left, 0.55, 1.05), CALLER_HZ) > 3000


async def test_a_pause_is_stored_as_a_pause_clear_and_the_held_audio_is_recorded_once(
    tmp_path: Path,
) -> None:
    """The caller says "uh-huh" 0.5 s into a 1.2 s answer: the agent stops at once (a soft
    clear: Twilio held 0.2 s), goes on 0.6 s later where it stopped, and finishes. The WAV
    holds the whole answer once, with the 0.6 s gap where the caller spoke; the record shows
    the pause, and the answer as heard in full."""
    archive = CallArchive(StorageSettings(dir=tmp_path))
    call = RecordedCall(archive)
    await call.start()
    await call.queue(*agent_speech([(OFFER, 0.8), (ASK, 0.4)]))
    await call.wait(0.5)
    await call.queue(PlaybackPauseFrame(reason="caller_sound"))
    await call.caller_says(0.6)
    await call.queue(PlaybackResumeFrame(reason="caller_quiet"))
    await call.wait(1.0)
    await call.twilio_stops()

    detail = await stored(archive)
    pause, agent = transcript(detail, "pause_clear", "agent")
    assert pause.at_s == pytest.approx(0.5, abs=0.02)
    assert pause.data["held_s"] == pytest.approx(0.2, abs=0.001)
    assert agent.interrupted is False and agent.text == f"{OFFER} {ASK}"
    assert detail.call.interrupted_turns == 0

    left, right = read_wav(detail.call.audio_path)
    assert abs(loud_seconds(right) - 1.2) <= 0.02  # once, not 1.4 s
    assert band_rms(between(right, 0.55, 1.05), AGENT_HZ) < 100  # silent while the caller spoke
    assert band_rms(between(right, 1.15, 1.75), AGENT_HZ) > 3000  # then the rest
    assert band_rms(between(left, 0.55, 1.05), CALLER_HZ) > 3000


async def test_tool_calls_are_stored_once_each(tmp_path: Path) -> None:
    """A tool call the LLM made (pipecat broadcasts its frames both ways) is one call and one
    result in the transcript."""
    archive = CallArchive(StorageSettings(dir=tmp_path))
    call = RecordedCall(archive)
    await call.start()
    args = {"day": "tuesday", "time": "14:00"}
    progress = dict(function_name="book", tool_call_id="t1", arguments=args)
    await call.queue(
        FunctionCallInProgressFrame(**progress),
        FunctionCallInProgressFrame(**progress),
        FunctionCallResultFrame(**progress, result={"booked": True}, run_llm=True),
    )
    await call.twilio_stops()

    detail = await stored(archive)
    assert [(e.kind, e.text, e.data["stage"]) for e in transcript(detail)] == [
        ("tool", "book", "call"),
        ("tool", "book", "result"),
    ]
    assert transcript(detail)[1].data["result"] == {"booked": True}
    assert detail.call.tool_calls == 2


async def test_a_provider_switch_is_stored_with_its_error(tmp_path: Path) -> None:
    """Deepgram was unreachable: the switch to the local STT is in the call's record."""
    archive = CallArchive(StorageSettings(dir=tmp_path))
    call = RecordedCall(archive)
    await call.start()
    await call.wait(0.5)
    reason = "connection error: [Errno 111] Connect call failed ('127.0.0.1', 9)"
    await call.queue(
        ProviderSwitchedFrame(
            stage="stt", failed="VoiceDeepgramSTTService#0", serving="Whisper#0", reason=reason
        )
    )
    await call.wait(1.0)
    await call.twilio_stops()

    detail = await stored(archive)
    (switch,) = detail.events
    assert (switch.kind, switch.text, switch.data["serving"]) == ("provider", "stt", "Whisper#0")
    assert switch.data["reason"] == reason and switch.at_s == pytest.approx(0.5, abs=0.05)
    assert detail.call.duration_s == pytest.approx(1.5, abs=0.1)


async def test_who_answered_is_stored_once_per_verdict(tmp_path: Path) -> None:
    """The agent's verdicts are in the timeline; its relay of Twilio's AMD result is not (the
    server stored Twilio's callback itself: ``calls show`` printed it twice)."""
    archive = CallArchive(StorageSettings(dir=tmp_path))
    call = RecordedCall(archive)
    await call.start()
    await call.queue(AnswerVerdictFrame(answered_by="machine_start", evidence="twilio_amd"))
    await call.wait(0.5)
    ended = AnswerVerdictFrame("machine_end_silence", greeting_ended=True, evidence="silence")
    await call.queue(ended)
    await call.wait(0.5)
    await call.twilio_stops()

    detail = await stored(archive)
    assert [(e.status, e.source, e.data["evidence"]) for e in detail.timeline] == [
        ("machine_end_silence", "agent", "silence")
    ]
    assert detail.call.answered_by == "machine_end_silence"


async def test_a_cancelled_call_is_still_completed(tmp_path: Path) -> None:
    """The pipeline is cancelled mid-answer (abrupt end): the row is completed as cancelled
    and the WAV is valid, holding the call up to the cancel."""
    archive = CallArchive(StorageSettings(dir=tmp_path))
    call = RecordedCall(archive)
    await call.start()
    await call.caller_says(0.4)
    await call.queue(*agent_speech([(OFFER, 1.0)]))
    await call.wait(0.3)
    await call.cancel()

    detail = await stored(archive)
    assert detail.call.end_reason == "error"  # cancelled
    assert detail.call.ended_at is not None
    left, right = read_wav(detail.call.audio_path)
    assert abs(left.size / 8000 - 0.7) < 0.03
    assert abs(loud_span(right) - 0.3) < 0.03


async def test_audio_is_on_disk_during_the_call(tmp_path: Path) -> None:
    """Each flush appends to the WAV and fixes its header: mid-call, the file already is a
    valid WAV of all but the last quarter second."""
    archive = CallArchive(StorageSettings(dir=tmp_path))
    call = RecordedCall(archive)
    await call.start()
    await call.caller_says(1.0)
    call.recording.flush()
    await archive.run(lambda: None)  # the storage thread has done the flush
    path = call.recording.audio_path
    assert path is not None
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 2
        assert abs(wav.getnframes() / 8000 - 0.75) < 0.03
    await call.twilio_stops()
    await archive.close()


async def test_a_full_disk_loses_the_audio_but_not_the_call(tmp_path: Path) -> None:
    """The WAV lands on a full disk (/dev/full: every write fails with ENOSPC): the error is
    logged once with the call sid, the call goes on (the agent's audio still reaches Twilio),
    and the transcript and the completed row are stored."""
    archive = CallArchive(StorageSettings(dir=tmp_path))
    archive.audio_path = lambda call_sid, started_at: Path("/dev/full")  # type: ignore[method-assign]
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m), level="ERROR", format="{message}")
    try:
        call = RecordedCall(archive)
        await call.start()
        await call.caller_says(0.4)
        call.recording.flush()
        await call.queue(
            UserTurnCommittedFrame(turn_id=1, text=QUESTION), *agent_speech([(ASK, 0.4)])
        )
        await call.wait(0.6)
        call.recording.flush()
        await call.twilio_stops()
        detail = await stored(archive)
    finally:
        logger.remove(sink)

    assert call.media_sent() == 20  # all 0.4 s of the answer went out
    assert [e.kind for e in transcript(detail)] == ["caller", "agent"]
    assert detail.call.end_reason == "caller_hung_up"
    assert detail.call.write_errors >= 1 and archive.write_errors >= 1
    (logged,) = [m for m in errors if "recording" in m]
    assert "CA0001" in logged and "No space left" in logged


async def test_an_unwritable_folder_does_not_break_the_call(tmp_path: Path) -> None:
    """The storage folder is a regular file: neither the database nor the WAV can be created;
    one error is logged, every failed write is counted, and the call is unaffected."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    archive = CallArchive(StorageSettings(dir=blocker))
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m), level="ERROR", format="{message}")
    try:
        call = RecordedCall(archive)
        await call.start()
        await call.queue(UserTurnCommittedFrame(turn_id=1, text=QUESTION))
        await call.queue(*agent_speech([(ASK, 0.4)]))
        await call.wait(0.6)
        await call.twilio_stops()
        await archive.close()
    finally:
        logger.remove(sink)
    assert call.media_sent() == 20
    assert call.recording.write_errors >= 3  # the WAV, the row, the events
    assert len([m for m in errors if "recording" in m]) == 1
