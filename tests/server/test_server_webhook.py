"""POST /twiml: the voice webhook answers with TwiML connecting the call to /media."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from server_harness import Factory, metric_value, serving, settings_for
from twilio.request_validator import RequestValidator

TOKEN = "12345"
FORM = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def _stream(xml: str) -> tuple[str | None, dict[str, str | None]]:
    stream = ET.fromstring(xml).find("Connect/Stream")
    assert stream is not None, xml
    return stream.get("url"), {p.get("name"): p.get("value") for p in stream.findall("Parameter")}


async def test_incoming_call_is_connected_to_the_media_stream(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        resp = await client.post("/twiml", data=FORM)
        assert resp.status == 200
        assert resp.content_type == "text/xml"
        url, params = _stream(await resp.text())
        assert url == f"wss://127.0.0.1:{client.port}/media"  # the Host header
        assert params == {
            "From": "+14158675309",
            "To": "+18005551212",
            "CallSid": "CA1234567890ABCDE",
        }


async def test_stream_host_comes_from_the_tunnel_then_from_settings(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        resp = await client.post("/twiml", data=FORM, headers={"X-Forwarded-Host": "abc.ngrok.app"})
        assert _stream(await resp.text())[0] == "wss://abc.ngrok.app/media"
    async with serving(settings_for(public_host="https://voice.example.com"), factory) as client:
        resp = await client.post("/twiml", data=FORM, headers={"X-Forwarded-Host": "abc.ngrok.app"})
        assert _stream(await resp.text())[0] == "wss://voice.example.com/media"


async def test_signed_webhook_is_answered_and_tampered_one_refused(factory: Factory) -> None:
    settings = settings_for(twilio_auth_token=TOKEN, public_host="mycompany.com")
    url = "https://mycompany.com/twiml?foo=1&bar=2"
    signature = RequestValidator(TOKEN).compute_signature(url, FORM)
    headers = {"X-Twilio-Signature": signature, "X-Forwarded-Proto": "https"}
    async with serving(settings, factory) as client:
        ok = await client.post("/twiml?foo=1&bar=2", data=FORM, headers=headers)
        assert ok.status == 200
        assert _stream(await ok.text())[0] == "wss://mycompany.com/media"

        tampered = await client.post(
            "/twiml?foo=1&bar=2", data={**FORM, "From": "+19005550000"}, headers=headers
        )
        assert tampered.status == 403
        other_query = await client.post("/twiml?foo=1&bar=3", data=FORM, headers=headers)
        assert other_query.status == 403
        unsigned = await client.post("/twiml?foo=1&bar=2", data=FORM)
        assert unsigned.status == 403
        name = 'voiceagent_requests_rejected_total{reason="signature"}'
        assert await metric_value(client, name) == 3


async def test_sdk_vector_through_the_webhook_handler(factory: Factory) -> None:
    """The SDK's published vector, byte for byte: the webhook handler mounted at /myapp.php."""

    def mount_vector_path(app) -> None:
        (route,) = [
            r
            for r in app.router.routes()
            if r.method == "POST" and r.resource.canonical == "/twiml"
        ]
        app.router.add_post("/myapp.php", route.handler)

    settings = settings_for(twilio_auth_token=TOKEN, public_host="mycompany.com")
    async with serving(settings, factory, app_hook=mount_vector_path) as client:
        headers = {
            "X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            "X-Forwarded-Proto": "https",
        }
        ok = await client.post("/myapp.php?foo=1&bar=2", data=FORM, headers=headers)
        assert ok.status == 200
        with_port = {**headers, "X-Twilio-Signature": "kvajT1Ptam85bY51eRf/AJRuM3w="}
        assert (
            await client.post("/myapp.php?foo=1&bar=2", data=FORM, headers=with_port)
        ).status == 200
        tampered = await client.post(
            "/myapp.php?foo=1&bar=2", data={**FORM, "Digits": "9999"}, headers=headers
        )
        assert tampered.status == 403


async def test_webhook_with_a_malformed_host_is_refused(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        resp = await client.post("/twiml", data=FORM, headers={"X-Forwarded-Host": "evil/x?"})
        assert resp.status == 400
