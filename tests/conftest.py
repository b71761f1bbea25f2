"""Suite-wide: no test writes into the real ``~/.local/share/voiceagent``; a fresh database on
the test PostgreSQL server for the tests that need one.

The PostgreSQL server comes from ``VOICEAGENT_TEST_POSTGRES_URL`` (``.ci/run`` starts one with
``scripts/test_postgres.sh``); each test gets its own database, dropped afterwards. Without a
server those tests skip, saying why, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest


@pytest.fixture(autouse=True)
def _storage_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Point ``XDG_DATA_HOME`` (the default storage folder's base) at a fresh temp folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


PROVIDER_VARIABLES = (
    "TWILIO_AUTH_TOKEN",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_FROM_NUMBER",
    "DEEPGRAM_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "PUBLIC_HOST",
)


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch):
    """``Settings()`` reads the environment: a key or setting exported in the developer's shell
    must not turn a test's offline stack into a cloud one (the suite's own variables stay)."""
    for name in list(os.environ):
        upper = name.upper()
        if upper in PROVIDER_VARIABLES or (
            upper.startswith("VOICEAGENT_")
            and not upper.startswith(("VOICEAGENT_TEST_", "VOICEAGENT_SOFTPHONE_"))
        ):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True, scope="session")
def _voiceagent_logs_on():
    """The suite is the application here: it turns voiceagent's (library-disabled) logs on."""
    from loguru import logger

    logger.enable("voiceagent")
    yield


SERVER_URL_VAR = "VOICEAGENT_TEST_POSTGRES_URL"


def postgres_server() -> str:
    """The test server's URL, or skip (fail in CI) without one."""
    url = os.environ.get(SERVER_URL_VAR)
    if url:
        return url
    reason = (
        f"no PostgreSQL server for the store tests: {SERVER_URL_VAR} is not set "
        '(eval "$(bash scripts/test_postgres.sh start)" starts a throwaway one)'
    )
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on the test server; dropped after the test."""
    import psycopg

    server = postgres_server()
    name = f"voiceagent_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(server)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
