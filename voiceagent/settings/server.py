"""Settings of the server process: HTTP/WebSocket server, Twilio transport, softphone, storage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from voiceagent.settings.base import Section, provider_alias

PIPELINE_SAMPLE_RATE = 16000


class ServerSettings(Section):
    """HTTP/WebSocket server."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_host: str | None = Field(
        None, validation_alias=provider_alias("public_host", "PUBLIC_HOST")
    )
    """The host name Twilio reaches (``PUBLIC_HOST``), e.g. ``agent.example.com``."""
    twilio_auth_token: str | None = Field(
        None, validation_alias=provider_alias("twilio_auth_token", "TWILIO_AUTH_TOKEN")
    )
    """Checks Twilio's signatures (``TWILIO_AUTH_TOKEN``); also the REST API's password."""
    insecure: bool = False
    shutdown_grace_s: float = Field(30.0, ge=0)
    max_message_bytes: int = Field(64 * 1024, gt=0)
    max_messages_per_s: int = Field(200, gt=0)
    max_calls: int = Field(20, ge=1)
    """Calls one worker holds; past it a new call gets the busy answer (README: measured how)."""
    max_loop_lag_ms: float = Field(250.0, gt=0)
    """New calls are refused while the worker's event loop runs this late (it is overloaded)."""
    busy_answer: Literal["say", "reject"] = "say"
    """Past capacity the webhook answers ``<Say>busy_message</Say><Hangup/>`` or
    ``<Reject reason="busy"/>`` (the caller hears a busy tone; no call minutes are billed)."""
    busy_message: str = (
        "Sorry, all our lines are busy right now. Please call again in a few minutes."
    )
    workers: int | None = Field(None, ge=1)
    """Worker processes of ``voiceagent serve`` sharing the port; None: one per core."""


class TransportSettings(Section):
    """Twilio transport."""

    sample_rate: int = Field(PIPELINE_SAMPLE_RATE, gt=0)
    lead_ms: int = Field(200, ge=20, le=2000)
    """How far ahead of real time audio may be sent to Twilio's buffer."""
    caller_frame_ms: int = Field(40, ge=20, le=100, multiple_of=20)
    """Caller audio per pipeline frame: Twilio's 20 ms media messages are gathered to this.
    Fewer frames cost less CPU per call; the VAD and the sound onset decide up to this late."""


class PhoneSettings(Section):
    """The browser softphone (``GET /phone`` and its socket ``/phone/ws``).

    With a secret (``link_secret``, else the Twilio auth token) the page and its socket need a
    signed, expiring link (``voiceagent phone-link``); without one the server listens on
    loopback only (unless ``server.insecure``), like ``/media``.
    """

    enabled: bool = True
    link_secret: str | None = None
    """Signs phone links; the Twilio auth token signs them when this is unset."""
    link_ttl_s: float = Field(600.0, gt=0.0, le=7 * 24 * 3600.0)
    """How long a link from ``voiceagent phone-link`` opens the page and places calls."""


def default_storage_dir() -> Path:
    """``$XDG_DATA_HOME/voiceagent``, i.e. ``~/.local/share/voiceagent`` by default."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "voiceagent"


class StorageSettings(Section):
    """Persisted calls: a database of calls and turns plus one WAV per call.

    The database is SQLite in ``dir`` unless ``url`` names a PostgreSQL server (several servers
    sharing one database); recordings go to ``dir``/recordings either way (a shared mount when
    several servers record).
    """

    enabled: bool = True
    dir: Path = Field(default_factory=default_storage_dir)
    url: str | None = None
    """``postgresql://user:password@host:5432/db``: keep calls in PostgreSQL instead of SQLite."""
    record_audio: bool = True
    flush_interval_s: float = Field(1.0, gt=0.0, le=10.0)
    """How often buffered audio is written to disk (at most this much is lost on a crash)."""

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "must be a postgresql:// URL (leave it unset for SQLite in storage.dir), "
                "e.g. postgresql://voiceagent:secret@db.internal:5432/voiceagent"
            )
        return value or None
