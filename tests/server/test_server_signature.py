"""X-Twilio-Signature: the twilio SDK's published vectors, and URL rebuilding behind proxies."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from twilio.request_validator import RequestValidator

from voiceagent.server.signature import BadHostError, SignatureVerifier, normalize_host, public_url

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
SIGNATURE_WITH_PORT = "kvajT1Ptam85bY51eRf/AJRuM3w="


def test_sdk_vector_is_accepted() -> None:
    assert SignatureVerifier(TOKEN).verify(URL, PARAMS, SIGNATURE)


def test_sdk_vector_signed_with_port_443_is_accepted_without_it() -> None:
    assert SignatureVerifier(TOKEN).verify(URL, PARAMS, SIGNATURE_WITH_PORT)


@pytest.mark.parametrize(
    ("url", "params", "signature"),
    [
        (URL, {**PARAMS, "Digits": "1235"}, SIGNATURE),  # tampered form value
        (URL, {**PARAMS, "Extra": "x"}, SIGNATURE),  # injected field
        ("https://mycompany.com/myapp.php?foo=1&bar=3", PARAMS, SIGNATURE),  # tampered URL
        ("https://evil.com/myapp.php?foo=1&bar=2", PARAMS, SIGNATURE),  # other host
        (URL, PARAMS, SIGNATURE[:-2] + "A="),  # tampered signature
        (URL, PARAMS, None),  # missing header
        (URL, PARAMS, ""),
    ],
)
def test_anything_tampered_is_refused(url: str, params: dict, signature: str | None) -> None:
    assert not SignatureVerifier(TOKEN).verify(url, params, signature)


def test_wrong_token_is_refused() -> None:
    assert not SignatureVerifier("54321").verify(URL, PARAMS, SIGNATURE)


def test_verifier_needs_a_token() -> None:
    with pytest.raises(ValueError):
        SignatureVerifier("")


def test_plain_url_accepts_the_signature_of_its_secure_twin() -> None:
    """A TLS proxy that sends no X-Forwarded-Proto: Twilio signed the https URL."""
    plain = URL.replace("https://", "http://")
    assert SignatureVerifier(TOKEN).verify(plain, PARAMS, SIGNATURE)
    signed_plain = RequestValidator(TOKEN).compute_signature(plain, PARAMS)
    assert not SignatureVerifier(TOKEN).verify(URL, PARAMS, signed_plain)


def test_websocket_upgrade_is_signed_over_wss_with_no_params() -> None:
    url = "wss://voice.example.com/media"
    signature = RequestValidator(TOKEN).compute_signature(url, {})
    verifier = SignatureVerifier(TOKEN)
    assert verifier.verify(url, {}, signature)
    assert not verifier.verify("https://voice.example.com/media", {}, signature)
    assert not verifier.verify("wss://voice.example.com/media2", {}, signature)


def test_public_url_behind_a_tunnel_uses_forwarded_host_and_proto() -> None:
    request = make_mocked_request(
        "POST",
        "/twiml?x=1",
        headers={
            "Host": "127.0.0.1:8080",
            "X-Forwarded-Host": "abc.ngrok.app",
            "X-Forwarded-Proto": "https",
        },
    )
    assert public_url(request, None, websocket=False) == "https://abc.ngrok.app/twiml?x=1"
    assert public_url(request, None, websocket=True) == "wss://abc.ngrok.app/twiml?x=1"


def test_configured_public_host_wins_over_headers() -> None:
    request = make_mocked_request(
        "GET", "/media", headers={"Host": "10.0.0.5", "X-Forwarded-Host": "spoofed.example"}
    )
    url = public_url(request, "https://voice.example.com/", websocket=True)
    assert url == "ws://voice.example.com/media"  # no X-Forwarded-Proto: the socket was plain


def test_plain_host_header_without_proxy() -> None:
    request = make_mocked_request("GET", "/media", headers={"Host": "127.0.0.1:9000"})
    assert public_url(request, None, websocket=True) == "ws://127.0.0.1:9000/media"


@pytest.mark.parametrize("host", ["evil.com/x", "a b", 'host"><x', ""])
def test_malformed_host_is_refused(host: str) -> None:
    request = make_mocked_request("GET", "/media", headers={"Host": host})
    with pytest.raises(BadHostError):
        public_url(request, None, websocket=True)


def test_normalize_host_strips_scheme_and_slash() -> None:
    assert normalize_host("https://x.io/") == "x.io"
    assert normalize_host("x.io:8443") == "x.io:8443"
