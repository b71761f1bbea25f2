"""Every call the server takes is recorded: stopped, hung up or with storage switched off."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from server_harness import Factory, TwilioLeg, eventually, metric_value, serving, settings_for

from voiceagent.settings import Settings
from voiceagent.storage import CallDetail, open_store

SPEECH = 30  # 600 ms of caller audio


def recording_settings(folder: Path, **storage) -> Settings:
    base = settings_for()
    return base.model_copy(
        update={"storage": base.storage.model_copy(update={"dir": folder, **storage})}
    )


async def _active_is(client, n: int) -> bool:
    return await metric_value(client, "voiceagent_active_calls") == n


def stored(folder: Path, call_sid: str) -> CallDetail:
    store = open_store(recording_settings(folder).storage, create=False)
    try:
        detail = store.find_call(call_sid)
    finally:
        store.close()
    assert detail is not None
    return detail


async def test_a_stopped_call_is_stored_with_both_sides_of_its_audio(tmp_path: Path) -> None:
    async with serving(recording_settings(tmp_path), Factory()) as client:
        leg = TwilioLeg(await client.ws_connect("/media"), "CA" + "1" * 32, "+15550001")
        await leg.connect_and_start()
        await leg.say(SPEECH)
        assert await leg.hear_media(20) >= 20  # the echo agent speaks it back
        await leg.stop()
        assert await leg.wait_closed() == 1000
        assert await eventually(lambda: _active_is(client, 0))
        assert await metric_value(client, "voiceagent_recording_write_errors_total") == 0
    call = stored(tmp_path, leg.call_sid).call
    assert (call.from_number, call.to_number, call.end_reason) == (
        "+15550001",
        "+15550199",
        "caller_hung_up",
    )
    assert call.audio_path is not None
    with wave.open(call.audio_path, "rb") as wav:
        assert wav.getnchannels() == 2 and wav.getnframes() == round(call.audio_seconds * 8000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert np.abs(samples[0::2]).max() > 1000  # the caller's constant tone…
    assert np.abs(samples[1::2]).max() > 1000  # …and the agent's echo of it


async def test_a_hang_up_without_stop_still_completes_the_call(tmp_path: Path) -> None:
    async with serving(recording_settings(tmp_path), Factory()) as client:
        leg = TwilioLeg(await client.ws_connect("/media"), "CA" + "2" * 32, "+15550001")
        await leg.connect_and_start()
        await leg.say(SPEECH)
        assert await leg.hear_media(1) == 1
        await leg.ws.close()
        assert await eventually(lambda: _active_is(client, 0), timeout=4.0)
    call = stored(tmp_path, leg.call_sid).call
    assert (
        call.end_reason == "error"
    )  # the socket closed without Twilio's stop and call.ended_at is not None
    assert call.audio_seconds is not None and call.audio_seconds > 0.5


async def test_with_storage_disabled_nothing_is_written(tmp_path: Path) -> None:
    async with serving(recording_settings(tmp_path, enabled=False), Factory()) as client:
        leg = TwilioLeg(await client.ws_connect("/media"), "CA" + "3" * 32, "+15550001")
        await leg.connect_and_start()
        await leg.say(5)
        await leg.stop()
        assert await leg.wait_closed() == 1000
    assert list(tmp_path.iterdir()) == []
