"""Signed phone links: valid until they expire, useless when changed, printed by the CLI."""

from __future__ import annotations

import argparse
import io
from urllib.parse import parse_qs, urlsplit

import pytest

from voiceagent.server.phone_links import (
    PhoneLinks,
    link_secret,
    page_base_url,
    run_phone_link_command,
)
from voiceagent.settings import Settings


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_link_opens_the_page_until_it_expires() -> None:
    clock = Clock()
    links = PhoneLinks("secret", now=clock)
    params = links.sign(600)
    assert params["exp"] == str(1_800_000_600)
    assert links.check(params["exp"], params["sig"]) is None
    clock.now += 600
    assert links.check(params["exp"], params["sig"]) is None  # valid through its last second
    clock.now += 1
    assert links.check(params["exp"], params["sig"]) == "expired"


def test_a_changed_link_or_another_secret_proves_nothing() -> None:
    clock = Clock()
    params = PhoneLinks("secret", now=clock).sign(600)
    links = PhoneLinks("secret", now=clock)
    later = str(int(params["exp"]) + 86_400)
    assert links.check(later, params["sig"]) == "invalid"  # a longer life, same signature
    assert links.check(params["exp"], params["sig"][:-1] + "A") in ("invalid",)
    assert PhoneLinks("other", now=clock).check(params["exp"], params["sig"]) == "invalid"
    assert links.check(None, params["sig"]) == "missing"
    assert links.check(params["exp"], "") == "missing"
    assert links.check("-5", params["sig"]) == "malformed"
    assert links.check(params["exp"], "x" * 500) == "malformed"
    assert links.check(params["exp"], "é" * 10) == "invalid"


def test_an_expired_link_is_told_apart_from_a_forged_one() -> None:
    clock = Clock()
    params = PhoneLinks("secret", now=clock).sign(60)
    clock.now += 3600
    links = PhoneLinks("secret", now=clock)
    assert links.check(params["exp"], params["sig"]) == "expired"
    assert PhoneLinks("forger", now=clock).check(params["exp"], params["sig"]) == "invalid"


def test_the_link_key_is_derived_so_a_link_never_reveals_or_doubles_as_the_token() -> None:
    token = "twilio-auth-token"
    params = PhoneLinks(token, now=Clock()).sign(60)
    import base64
    import hashlib
    import hmac

    plain = hmac.new(token.encode(), f"/phone\n{params['exp']}".encode(), hashlib.sha256)
    assert params["sig"] != base64.urlsafe_b64encode(plain.digest()).rstrip(b"=").decode()
    with pytest.raises(ValueError):
        PhoneLinks("")


def test_which_secret_signs_links() -> None:
    assert link_secret(Settings()) is None
    assert link_secret(Settings(server={"twilio_auth_token": "tok"})) == "tok"
    both = Settings(server={"twilio_auth_token": "tok"}, phone={"link_secret": "own"})
    assert link_secret(both) == "own"


def test_the_page_is_reached_at_the_public_host_else_the_bind_address() -> None:
    assert page_base_url(Settings()) == "http://127.0.0.1:8080"
    assert page_base_url(Settings(server={"public_host": "agent.example.com"})) == (
        "https://agent.example.com"
    )
    assert page_base_url(Settings(server={"host": "::1", "port": 9000})) == "http://[::1]:9000"


def test_phone_link_prints_a_signed_link(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEAGENT_PHONE__LINK_SECRET", "cli-secret")
    monkeypatch.setenv("PUBLIC_HOST", "agent.example.com")
    out = io.StringIO()
    assert run_phone_link_command(argparse.Namespace(ttl=120.0, base_url=None), out) == 0
    url = urlsplit(out.getvalue().strip())
    assert (url.scheme, url.netloc, url.path) == ("https", "agent.example.com", "/phone")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert PhoneLinks("cli-secret").check(query["exp"], query["sig"]) is None


def test_phone_link_without_a_secret_prints_the_plain_page(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TWILIO_AUTH_TOKEN", "VOICEAGENT_PHONE__LINK_SECRET", "PUBLIC_HOST"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    args = argparse.Namespace(ttl=None, base_url="http://127.0.0.1:8123")
    assert run_phone_link_command(args, out) == 0
    assert out.getvalue().strip() == "http://127.0.0.1:8123/phone"
    assert "needs no signed link" in capsys.readouterr().err
