"""The softphone's server side: the page, its socket, and a browser call like any other call.

The page is scripted from Python here (tests/server/phone_leg.py); tests/web drives the real
page in Chromium.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import wave
from pathlib import Path

import numpy as np
from phone_leg import PhoneLeg, TurnFactory, tone
from server_harness import eventually, metric_value, serving, settings_for

from voiceagent.server.phone_links import PhoneLinks
from voiceagent.settings import Settings
from voiceagent.storage import open_store
from voiceagent.transports.twilio.line_format import MULAW_8K, PCM16_16K

REJECTED = 'voiceagent_requests_rejected_total{{reason="{}"}}'


def phone_settings(folder: Path | None = None, **sections) -> Settings:
    base = settings_for(**sections.pop("server", {}))
    update = dict(sections)
    if folder is not None:
        update["storage"] = base.storage.model_copy(update={"dir": folder})
    else:
        update["storage"] = base.storage.model_copy(update={"enabled": False})
    if "phone" in update:
        update["phone"] = base.phone.model_copy(update=update["phone"])
    return base.model_copy(update=update)


def stored_call(folder: Path, call_sid: str) -> tuple:
    store = open_store(phone_settings(folder).storage, create=False)
    try:
        detail = store.find_call(call_sid)
    finally:
        store.close()
    with sqlite3.connect(folder / "calls.db") as db:
        (parameters,) = db.execute(
            "SELECT parameters FROM calls WHERE call_sid = ?", (call_sid,)
        ).fetchone()
    assert detail is not None
    return detail, json.loads(parameters)


async def _no_active_calls(client) -> bool:
    return await metric_value(client, "voiceagent_active_calls") == 0


async def test_the_page_and_its_scripts_are_served_on_loopback_without_a_link() -> None:
    async with serving(phone_settings(), TurnFactory()) as client:
        page = await client.get("/phone")
        assert page.status == 200 and page.content_type == "text/html"
        html = await page.text()
        assert 'id="call"' in html and 'id="hangup"' in html and "/phone/static/app.js" in html
        assert "'self'" in page.headers["Content-Security-Policy"]
        assert page.headers["Cache-Control"] == "no-store"
        for name in ("app.js", "call.js", "line.js", "capture-worklet.js", "playback-worklet.js"):
            script = await client.get(f"/phone/static/{name}")
            assert script.status == 200, name
            assert "javascript" in script.content_type, (name, script.content_type)
        assert (await client.get("/phone/static/../../settings.py")).status in (403, 404)


async def test_a_browser_call_is_named_by_the_server_and_recorded_as_a_browser_call(
    tmp_path: Path,
) -> None:
    factory = TurnFactory(frames_per_turn=10)
    async with serving(phone_settings(tmp_path), factory) as client:
        leg = PhoneLeg(await client.ws_connect("/phone/ws"))
        await leg.answer(parameters={"From": "+15550100", "channel": "twilio"})
        assert leg.ready["callSid"].startswith("BR") and len(leg.ready["callSid"]) == 34
        assert leg.ready["mediaFormat"] == MULAW_8K.media_format()
        await leg.say(tone(MULAW_8K, 10))
        assert await leg.listen_until(lambda leg: leg.events("heard"))
        # Every page event the pipeline's frames make, in the order they happened.
        kinds = [m["type"] for m in leg.received if m.get("event") == "phone"]
        assert kinds[:5] == ["partial", "final", "committed", "metrics", "agent_text"]
        assert leg.events("committed")[0] == {
            "event": "phone",
            "type": "committed",
            "turn": 1,
            "text": "Hello there.",
            "reason": "final",
            "revision": False,
        }
        assert leg.events("metrics")[0]["data"]["silence_s"] == 0.4
        (heard,) = leg.events("heard")
        assert (heard["text"], heard["interrupted"], heard["unheard"]) == (
            "Hi, how can I help?",
            False,
            "",
        )
        # The agent's 400 ms reply came as 20 ms μ-law frames, and its mark was echoed.
        assert [len(frame) for frame in leg.media()] == [160] * 20
        await leg.hang_up()
        assert await leg.closed() == 1000
        assert await eventually(lambda: _no_active_calls(client))
    detail, parameters = stored_call(tmp_path, leg.ready["callSid"])
    assert detail.call.from_number == "client:browser"  # the page cannot pass as a phone
    assert parameters == {"From": "client:browser", "channel": "browser", "line": "mulaw-8k"}
    assert detail.call.end_reason == "caller_hung_up" and detail.call.ended_at is not None
    assert [(e.kind, e.text) for e in detail.events if e.kind in ("caller", "agent")] == [
        ("caller", "Hello there."),
        ("agent", "Hi, how can I help?"),
    ]


async def test_a_wideband_call_carries_16khz_pcm_both_ways(tmp_path: Path) -> None:
    factory = TurnFactory(frames_per_turn=10)
    async with serving(phone_settings(tmp_path), factory) as client:
        leg = PhoneLeg(await client.ws_connect("/phone/ws?line=pcm16-16k"), PCM16_16K)
        await leg.answer()
        assert leg.ready["mediaFormat"] == {
            "encoding": "audio/x-pcm16le",
            "sampleRate": 16000,
            "channels": 1,
        }
        await leg.say(tone(PCM16_16K, 10))
        assert await leg.listen_until(lambda leg: leg.events("heard"))
        frames = leg.media()
        assert [len(frame) for frame in frames] == [640] * 20
        assert b"".join(frames) == b"".join(tone(PCM16_16K, 20))  # the agent's audio, untouched
        await asyncio.sleep(0.6)  # the page plays the reply before hanging up
        await leg.hang_up()
        assert await leg.closed() == 1000
    detail, parameters = stored_call(tmp_path, leg.ready["callSid"])
    assert parameters["line"] == "pcm16-16k"
    with wave.open(str(detail.call.audio_path), "rb") as wav:  # recorded at 8 kHz like any call
        assert (wav.getframerate(), wav.getnchannels()) == (8000, 2)
        agent = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")[1::2]
    loud = np.flatnonzero(np.abs(agent) > 2000)
    assert 0.35 < (loud[-1] - loud[0]) / 8000 < 0.45  # the 400 ms reply, whole


async def test_a_start_under_another_identity_is_refused(tmp_path: Path) -> None:
    async with serving(phone_settings(tmp_path), TurnFactory()) as client:
        leg = PhoneLeg(await client.ws_connect("/phone/ws"))
        await leg.answer(call_sid="CA" + "0" * 32)  # posing as a Twilio call
        assert await leg.closed() == 1008
        assert await eventually(lambda: _no_active_calls(client))


async def test_a_page_that_vanishes_mid_call_still_ends_its_call_record(tmp_path: Path) -> None:
    factory = TurnFactory(frames_per_turn=1000)
    async with serving(phone_settings(tmp_path), factory) as client:
        leg = PhoneLeg(await client.ws_connect("/phone/ws"))
        await leg.answer()
        await leg.say(tone(MULAW_8K, 25))
        await leg.ws.close()  # the tab closed: no stop
        assert await eventually(lambda: _no_active_calls(client))
        assert await metric_value(client, 'voiceagent_calls_ended_total{reason="hangup"}') == 1
    detail, _ = stored_call(tmp_path, leg.ready["callSid"])
    assert detail.call.ended_at is not None and detail.call.end_reason == "caller_hung_up"
    assert detail.call.audio_seconds is not None and detail.call.audio_seconds >= 0.4


async def test_a_flooding_page_is_cut_off_like_any_caller() -> None:
    async with serving(phone_settings(), TurnFactory(frames_per_turn=10_000)) as client:
        leg = PhoneLeg(await client.ws_connect("/phone/ws"))
        await leg.answer()
        await leg.say(tone(MULAW_8K, 1) * 400)  # 8 s of audio in one burst
        assert await eventually(lambda: _flood_counted(client)), (
            "the flood guard let a burst of 400 messages through"
        )


async def _flood_counted(client) -> bool:
    return await metric_value(client, 'voiceagent_protocol_errors_total{kind="flood"}') > 0


async def test_another_sites_page_cannot_place_a_call() -> None:
    async with serving(phone_settings(), TurnFactory()) as client:
        host = f"127.0.0.1:{client.port}"
        refused = await client.get("/phone/ws", headers={"Origin": "https://evil.example"})
        assert refused.status == 403
        ws = await client.ws_connect("/phone/ws", origin=f"http://{host}")
        leg = PhoneLeg(ws)
        await leg.answer()
        await leg.hang_up()
        assert await leg.closed() == 1000
        assert await metric_value(client, REJECTED.format("phone_origin")) == 1


async def test_an_unknown_line_format_is_refused_before_the_upgrade() -> None:
    async with serving(phone_settings(), TurnFactory()) as client:
        response = await client.get("/phone/ws?line=opus-48k")
        assert response.status == 400 and "pcm16-16k" in await response.text()


async def test_with_a_secret_the_page_and_its_socket_need_a_live_signed_link() -> None:
    secret = "s3cret-phone-links"
    settings = phone_settings(phone={"link_secret": secret})
    links = PhoneLinks(secret)
    expired = PhoneLinks(secret, now=lambda: time.time() - 3600).sign(60)
    good = links.sign(60)
    tampered = {**good, "exp": str(int(good["exp"]) + 3600)}
    async with serving(settings, TurnFactory()) as client:
        assert (await client.get("/phone")).status == 403
        for bad, why in ((expired, "expired"), (tampered, "invalid")):
            page = await client.get("/phone", params=bad)
            assert page.status == 403 and why in await page.text()
            assert (await client.get("/phone/ws", params=bad)).status == 403
        assert (await client.get("/phone/ws")).status == 403
        assert (await client.get("/phone", params=good)).status == 200
        leg = PhoneLeg(await client.ws_connect("/phone/ws", params=good))
        await leg.answer()
        await leg.hang_up()
        assert await leg.closed() == 1000
        assert await metric_value(client, REJECTED.format("phone_link")) == 6


async def test_the_twilio_auth_token_signs_links_when_no_phone_secret_is_set() -> None:
    settings = phone_settings(server={"twilio_auth_token": "tw-token"})
    async with serving(settings, TurnFactory()) as client:
        assert (await client.get("/phone")).status == 403
        params = PhoneLinks("tw-token").sign(60)
        assert (await client.get("/phone", params=params)).status == 200


async def test_the_softphone_can_be_switched_off() -> None:
    async with serving(phone_settings(phone={"enabled": False}), TurnFactory()) as client:
        assert (await client.get("/phone")).status == 404
        assert (await client.get("/phone/ws")).status == 404
