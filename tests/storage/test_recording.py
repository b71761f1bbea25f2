"""A call's recording outside a pipeline: what it does when the archive is gone."""

from __future__ import annotations

from pathlib import Path

from voiceagent.clock import ManualClock
from voiceagent.settings import StorageSettings
from voiceagent.storage import CallArchive, open_store


async def test_a_recording_that_outlives_its_archive_only_counts_its_writes(tmp_path: Path):
    """The server stopped (archive closed) while a call was still winding down: the call's
    last events cannot be written, which is counted; nothing raises into the call."""
    archive = CallArchive(StorageSettings(dir=tmp_path))
    clock = ManualClock()
    recording = archive.recording(clock=clock)
    recording.start(call_sid="CA1", stream_sid="MZ1", parameters={"From": "+15550100"})
    recording.caller_turn(1, "hello there", {"reason": "stable"})
    await archive.close()
    clock.advance(1.0)
    recording.caller_turn(2, "are you there?", {})
    recording.flush()
    await recording.close()
    assert recording.write_errors == 3  # the event, the flush, the end of the call
    assert recording.closed

    store = open_store(archive.settings, create=False)
    detail = store.find_call("CA1")
    store.close()
    assert detail is not None and [e.text for e in detail.events] == ["hello there"]
    assert detail.call.from_number == "+15550100" and detail.call.ended_at is None


async def test_a_recording_that_never_started_writes_nothing(tmp_path: Path):
    archive = CallArchive(StorageSettings(dir=tmp_path))
    recording = archive.recording(clock=ManualClock())
    recording.caller_audio(b"\x00\x01" * 160, 16000, 1)
    recording.agent_turn(1, "hi", "hi", interrupted=False)
    await recording.close()
    await archive.close()
    assert recording.write_errors == 0 and not tmp_path.joinpath("calls.db").exists()


async def test_a_provider_that_failed_before_the_call_started_is_recorded_at_its_start(
    tmp_path: Path,
):
    archive = CallArchive(StorageSettings(dir=tmp_path))
    clock = ManualClock()
    recording = archive.recording(clock=clock)
    recording.provider_switch("stt", "deepgram", "whisper", "connection refused")
    clock.advance(0.2)
    recording.start(call_sid="CA1", stream_sid="MZ1")
    clock.advance(3.0)
    recording.mark_ended("stop")
    await recording.close()
    await archive.close()

    store = open_store(archive.settings, create=False)
    detail = store.find_call("CA1")
    store.close()
    assert detail is not None
    assert [(e.kind, e.text, e.at_s, e.data["serving"]) for e in detail.events] == [
        ("provider", "stt", 0.0, "whisper")
    ]
    assert detail.call.duration_s == 3.0 and detail.call.end_reason == "caller_hung_up"


async def test_a_live_calls_events_are_stored_once_a_flush_in_one_transaction(tmp_path: Path):
    """The caller speaks three times within a second: nothing is written per event; the
    flush stores all three in order, with the call's counters, in one write."""
    archive = CallArchive(StorageSettings(dir=tmp_path, record_audio=False))
    clock = ManualClock()
    recording = archive.recording(clock=clock)
    recording.start(call_sid="CA2", stream_sid="MZ2", parameters={})
    batches: list[list[str]] = []
    write_events = recording._writer.write_events

    def counting(events):
        batches.append([e.text for e in events])
        write_events(events)

    recording._writer.write_events = counting
    for turn, words in enumerate(("hello", "I need a cleaning", "next Tuesday"), start=1):
        clock.advance(0.3)
        recording.caller_turn(turn, words, {})
    await archive.run(lambda: None)  # everything queued so far is written
    assert batches == []
    recording.flush()
    await archive.run(lambda: None)
    assert batches == [["hello", "I need a cleaning", "next Tuesday"]]

    store = open_store(archive.settings, create=False)
    detail = store.find_call("CA2")
    store.close()
    assert detail is not None
    assert [e.text for e in detail.events] == ["hello", "I need a cleaning", "next Tuesday"]
    assert detail.call.caller_turns == 3
    await recording.close()
    await archive.close()
