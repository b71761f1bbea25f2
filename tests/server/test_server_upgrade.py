"""GET /media: the WebSocket upgrade is signed too (wss URL, no params) and refused before it."""

from __future__ import annotations

import aiohttp
import pytest
from server_harness import Factory, TwilioLeg, metric_value, serving, settings_for
from twilio.request_validator import RequestValidator

TOKEN = "12345"
SIGNED_URL = "wss://voice.example.com/media"


def _secure_settings():
    return settings_for(twilio_auth_token=TOKEN, public_host="voice.example.com")


async def test_wss_signed_upgrade_connects_a_call(factory: Factory) -> None:
    signature = RequestValidator(TOKEN).compute_signature(SIGNED_URL, {})
    headers = {"X-Twilio-Signature": signature, "X-Forwarded-Proto": "https"}
    async with serving(_secure_settings(), factory) as client:
        ws = await client.ws_connect("/media", headers=headers)
        leg = TwilioLeg(ws, "CA" + "7" * 32, "+15550001")
        await leg.connect_and_start()
        await leg.say(30)
        assert await leg.hear_media(3) >= 3
        await leg.stop()
        assert await leg.wait_closed() == 1000


@pytest.mark.parametrize(
    "headers",
    [
        {},  # unsigned
        {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "X-Forwarded-Proto": "https"},
        # signed for https (a webhook signature), not for the wss upgrade
        {
            "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(
                "https://voice.example.com/media", {}
            ),
            "X-Forwarded-Proto": "https",
        },
    ],
)
async def test_unsigned_or_wrongly_signed_upgrade_is_refused_with_403(
    factory: Factory, headers: dict[str, str]
) -> None:
    async with serving(_secure_settings(), factory) as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/media", headers=headers)
        assert refused.value.status == 403
        assert factory.calls == []  # no pipeline was built
        assert (
            await metric_value(client, 'voiceagent_requests_rejected_total{reason="signature"}')
            == 1
        )
        assert await metric_value(client, "voiceagent_calls_total") == 0


async def test_plain_get_on_media_asks_for_an_upgrade(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        resp = await client.get("/media")
        assert resp.status == 426
