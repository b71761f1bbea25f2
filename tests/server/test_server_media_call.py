"""Media Streams calls end to end over a real WebSocket on 127.0.0.1.

Each test is a call script: Twilio connects, starts the stream, the caller speaks, and the
test pipeline (an echo agent) speaks the caller's audio back through ``call.output``.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
from server_harness import (
    Factory,
    TwilioLeg,
    eventually,
    metric_value,
    serving,
    settings_for,
)

SPEECH = 30  # 600 ms of caller audio: enough to come back out through both resamplers


async def _active_is(client, n: int) -> bool:
    return await metric_value(client, "voiceagent_active_calls") == n


async def _open_leg(client, caller: str, n: int) -> TwilioLeg:
    ws = await client.ws_connect("/media")
    leg = TwilioLeg(ws, f"CA{n:032d}", caller)
    await leg.connect_and_start()
    return leg


async def test_caller_audio_echoes_back_and_stop_closes_normally(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        leg = await _open_leg(client, "+15550001", 1)
        await leg.say(SPEECH)
        assert await leg.hear_media(5) >= 5  # the agent (echo) speaks back on our stream
        await leg.stop()
        assert await leg.wait_closed() == 1000
        assert await eventually(lambda: _active_is(client, 0))
        assert factory.calls[0].call_sid == leg.call_sid
        assert factory.calls[0].custom_parameters["From"] == "+15550001"
        assert await metric_value(client, "voiceagent_calls_total") == 1
        assert await metric_value(client, "voiceagent_frames_in_total") == SPEECH
        assert await metric_value(client, "voiceagent_frames_out_total") >= 5
        assert await metric_value(client, 'voiceagent_calls_ended_total{reason="stop"}') == 1


async def test_caller_hangs_up_without_stop_and_the_pipeline_ends(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        leg = await _open_leg(client, "+15550001", 1)
        await leg.say(SPEECH)
        assert await leg.hear_media(1) == 1
        await leg.ws.close()
        assert await eventually(lambda: _active_is(client, 0), timeout=4.0)
        assert factory.calls[0].ended.is_set()  # the transport was told the socket is gone
        assert await metric_value(client, 'voiceagent_calls_ended_total{reason="hangup"}') == 1


async def test_the_agent_hangs_up_and_the_socket_closes_normally() -> None:
    factory = Factory(hang_up_after=2)  # pipeline audio frames, not 20 ms messages
    async with serving(settings_for(), factory) as client:
        leg = await _open_leg(client, "+15550001", 1)
        await leg.say(SPEECH)
        assert await leg.wait_closed() == 1000
        assert await eventually(lambda: _active_is(client, 0))
        assert await metric_value(client, 'voiceagent_calls_ended_total{reason="agent"}') == 1


async def test_bad_input_is_counted_and_the_call_carries_on(factory: Factory) -> None:
    async with serving(settings_for(max_message_bytes=4096), factory) as client:
        leg = await _open_leg(client, "+15550001", 1)
        await leg.ws.send_str("this is not json")
        await leg.ws.send_bytes(b"\x00\x01binary")
        await leg.ws.send_str(json.dumps({"event": "dance", "streamSid": leg.stream_sid}))
        await leg.ws.send_str("x" * 10_000)  # over max_message_bytes, under aiohttp's cap
        await leg.ws.send_str(
            json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": "9",
                    "streamSid": "MZother",
                    "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": ""},
                }
            )
        )
        await leg.say(SPEECH)
        assert await leg.hear_media(5) >= 5  # still talking after all that
        for kind in ("non_json", "binary", "unknown_event", "too_large", "wrong_stream_sid"):
            name = f'voiceagent_protocol_errors_total{{kind="{kind}"}}'
            assert await metric_value(client, name) == 1, kind
        assert not leg.ws.closed
        await leg.stop()
        assert await leg.wait_closed() == 1000


async def test_message_above_the_hard_cap_ends_only_that_call(factory: Factory) -> None:
    settings = settings_for(max_message_bytes=1024)  # hard cap: 1 MiB
    async with serving(settings, factory) as client:
        leg = await _open_leg(client, "+15550001", 1)
        await leg.say(5)
        await leg.ws.send_str("y" * (1 << 20) + "y")
        assert await leg.wait_closed() == 1009
        assert await eventually(lambda: _active_is(client, 0))
        name = 'voiceagent_protocol_errors_total{kind="too_large"}'
        assert await metric_value(client, name) == 1


async def test_repeated_oversized_messages_close_the_call_for_abuse(factory: Factory) -> None:
    async with serving(settings_for(max_message_bytes=1024), factory) as client:
        leg = await _open_leg(client, "+15550001", 1)
        for _ in range(25):
            await leg.ws.send_str("z" * 2000)
        assert await leg.wait_closed() == 1008
        assert await eventually(lambda: _active_is(client, 0))
        assert await metric_value(client, 'voiceagent_calls_ended_total{reason="abuse"}') == 1


async def test_a_flooding_call_is_closed_while_its_neighbour_keeps_talking(
    factory: Factory,
) -> None:
    async with serving(settings_for(max_messages_per_s=200), factory) as client:
        calm = await _open_leg(client, "+15550001", 1)
        flood = await _open_leg(client, "+15550002", 2)
        await flood.say(400)  # far over 200 messages/s
        await calm.say(SPEECH)
        assert await flood.wait_closed() == 1008
        assert await calm.hear_media(5) >= 5
        assert await metric_value(client, 'voiceagent_protocol_errors_total{kind="flood"}') > 50
        assert not calm.ws.closed
        await calm.say(SPEECH)
        assert await calm.hear_media(10) >= 10
        await calm.stop()
        assert await calm.wait_closed() == 1000


async def test_a_crashing_stage_in_one_call_does_not_touch_the_other(factory: Factory) -> None:
    factory.explode_for.add("+15550666")
    async with serving(settings_for(), factory) as client:
        broken = await _open_leg(client, "+15550666", 1)
        healthy = await _open_leg(client, "+15550001", 2)
        await broken.say(SPEECH)
        await healthy.say(SPEECH)
        assert await healthy.hear_media(5) >= 5
        assert await eventually(
            lambda: _metric_above(client, "voiceagent_pipeline_errors_total", 0)
        )
        assert await broken.hear_media(1, timeout=0.3) == 0  # its stage raised on every frame
        assert not broken.ws.closed  # errors are contained: the call itself goes on
        await healthy.stop()
        await broken.stop()
        assert await healthy.wait_closed() == 1000
        assert await broken.wait_closed() == 1000
        assert await metric_value(client, "voiceagent_call_failures_total") == 0


async def test_a_pipeline_that_cannot_be_built_fails_that_call_only() -> None:
    good, bad = Factory(), Factory(fail_build=True)
    state = {"n": 0}

    async def factory(call, settings):
        state["n"] += 1
        return await (bad if state["n"] == 1 else good)(call, settings)

    async with serving(settings_for(), factory) as client:
        failed = await client.ws_connect("/media")
        close = await asyncio.wait_for(failed.receive(), 5)
        assert close.type is aiohttp.WSMsgType.CLOSE
        assert failed.close_code == 1011
        leg = await _open_leg(client, "+15550001", 2)
        await leg.say(SPEECH)
        assert await leg.hear_media(5) >= 5
        assert await metric_value(client, "voiceagent_call_failures_total") == 1
        await leg.stop()
        assert await leg.wait_closed() == 1000


async def _metric_above(client, name: str, floor: float) -> bool:
    return await metric_value(client, name) > floor
