"""Media Streams calls end to end over a real WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio

from conftest import Factory, TwilioLeg, eventually, metric_value, serving, settings_for


async def test_caller_audio_echoes_back_and_stop_closes_normally(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        ws = await client.ws_connect("/media")
        leg = TwilioLeg(ws, "CA" + "1" * 32, "+15550001")
        await leg.connect_and_start()
        await leg.say(10)
        assert await leg.hear_media(5) >= 5  # the agent (echo) speaks back on our stream
        await leg.stop()
        assert await leg.wait_closed() == 1000
        assert await eventually(lambda: _active_is(client, 0))
        assert factory.calls[0].call_sid == leg.call_sid
        assert await metric_value(client, "voiceagent_calls_total") == 1
        assert await metric_value(client, "voiceagent_frames_in_total") == 10
        assert await metric_value(client, "voiceagent_frames_out_total") >= 5


async def _active_is(client, n: int) -> bool:
    return await metric_value(client, "voiceagent_active_calls") == n
