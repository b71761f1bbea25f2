"""Typed settings with defaults that work offline; environment variables override.

Each stage owns a small settings model; ``Settings`` composes them. ``Settings.from_env()``
reads ``VOICEAGENT_<SECTION>__<FIELD>`` (e.g. ``VOICEAGENT_SERVER__PORT=9000``) plus the
well-known provider variables (``TWILIO_AUTH_TOKEN``, ``TWILIO_ACCOUNT_SID``,
``TWILIO_FROM_NUMBER``, ``DEEPGRAM_API_KEY``, ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
``PUBLIC_HOST``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from voiceagent.turns.options import TurnTaking

PIPELINE_SAMPLE_RATE = 16000


class ServerSettings(BaseModel):
    """HTTP/WebSocket server."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_host: str | None = None
    twilio_auth_token: str | None = None
    insecure: bool = False
    shutdown_grace_s: float = Field(30.0, ge=0)
    max_message_bytes: int = 64 * 1024
    max_messages_per_s: int = 200
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


class TransportSettings(BaseModel):
    """Twilio transport."""

    sample_rate: int = PIPELINE_SAMPLE_RATE
    lead_ms: int = Field(200, ge=20, le=2000)
    """How far ahead of real time audio may be sent to Twilio's buffer."""


class LocalModelSettings(BaseModel):
    """Offline embedded stack (all paths optional: resolved from registry packages)."""

    cache_dir: Path = Path(os.path.expanduser("~/.cache/voiceagent"))
    whisper_model: Literal["tiny.en", "base"] = "tiny.en"
    whisper_model_path: Path | None = None
    whisper_threads: int = 2
    whisper_beam_size: int = 1
    whisper_short_context: bool = True
    """Encode only the utterance + padding instead of Whisper's 30 s window (≈3× faster)."""
    partial_interval_s: float = 0.35
    llm_model: Literal["qwen2.5-0.5b", "qwen2.5-1.5b"] = "qwen2.5-0.5b"
    llm_model_path: Path | None = None
    llm_port: int = 0
    llm_threads: int = 2
    llm_ctx: int = 2048
    llm_prefetch: bool = True
    """After each heard agent turn, have the server evaluate the conversation so far
    (``KVPrefetch``): the caller's next turn costs only its own tokens."""
    piper_model_path: Path | None = None
    piper_config_path: Path | None = None


class TwilioSettings(BaseModel):
    """Twilio's REST API (calls, hang-up, transfer); the token is ``server.twilio_auth_token``."""

    account_sid: str | None = None
    api_base_url: str = "https://api.twilio.com"
    """Where the twilio SDK's requests go (tests point it at a fake on 127.0.0.1)."""
    timeout_s: float = Field(5.0, gt=0.0, le=30.0)


class TelephonySettings(BaseModel):
    """Outbound calls, answering machines and transfers (see :mod:`voiceagent.telephony`)."""

    from_number: str | None = None
    """The caller id of outbound calls (a Twilio number, E.164); ``TWILIO_FROM_NUMBER``."""
    ring_timeout_s: int = Field(30, ge=5, le=600)
    """How long an outbound call rings before Twilio reports ``no-answer``."""
    outbound_greeting: str = (
        "Hello, this is the receptionist at Bright Smile Dental calling. Do you have a moment?"
    )
    """What the agent says first when the person it called answers."""
    machine_detection: Literal["agent", "twilio", "off"] = "agent"
    """Who tells an answering machine from a person on outbound calls: the agent itself
    (greeting-shaped first utterance, beep, wording), Twilio's AMD (``AsyncAmd``), or nobody."""
    voicemail_action: Literal["leave_message", "hang_up"] = "leave_message"
    """On an answering machine: speak ``voicemail_message`` once the greeting ended, or hang up."""
    voicemail_message: str = (
        "Hello, this is Bright Smile Dental calling about your appointment. Please call us "
        "back at your convenience. Thank you, goodbye."
    )
    answering_machine: dict[str, Any] = Field(default_factory=dict)
    """Keyword overrides of ``AnsweringMachineParams`` (the agent's own detector)."""
    amd_timeout_s: int = Field(30, ge=3, le=59)
    """Twilio AMD's ``MachineDetectionTimeout``."""
    transfer_targets: dict[str, str] = Field(default_factory=dict)
    """Where ``transfer_call`` may send a caller: name → E.164 number or SIP URI."""
    transfer_caller_id: str | None = None
    """Caller id of the transferred leg (``<Dial callerId>``); None: the caller's own number."""
    transfer_failed_text: str = (
        "I'm sorry, I couldn't transfer your call right now. Can I help you with something else?"
    )
    """Spoken when Twilio refuses a transfer; the conversation goes on."""

    @field_validator("transfer_targets", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        """``VOICEAGENT_TELEPHONY__TRANSFER_TARGETS=front desk=+15550100,billing=sip:b@pbx``."""
        if isinstance(value, str):
            targets = {}
            for item in value.split(","):
                name, sep, target = item.partition("=")
                if item.strip() and not sep:
                    raise ValueError(f"expected NAME=NUMBER, got {item.strip()!r}")
                if item.strip():
                    targets[name.strip()] = target.strip()
            return targets
        return value

    @field_validator("transfer_targets")
    @classmethod
    def _valid_targets(cls, value: dict[str, str]) -> dict[str, str]:
        from voiceagent.telephony.numbers import check_transfer_target

        for name, target in value.items():
            if not name:
                raise ValueError("a transfer target needs a name")
            check_transfer_target(target)
        return value


class CloudSettings(BaseModel):
    """Cloud providers: chosen per stage when their keys are present."""

    deepgram_api_key: str | None = None
    deepgram_url: str = "wss://api.deepgram.com"
    """Deepgram's base URL (``ws://`` or ``wss://``): STT and TTS sockets are opened below it."""
    deepgram_stt_model: str = "nova-3"
    deepgram_endpointing_ms: int = Field(300, ge=10)
    deepgram_utterance_end_ms: int = Field(1000, ge=1000)
    deepgram_tts_voice: str = "aura-2-thalia-en"
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"

    @field_validator("deepgram_url")
    @classmethod
    def _deepgram_url_shape(cls, value: str) -> str:
        from voiceagent.services.reachability import check_url

        problem = check_url(value, ("ws", "wss"), "deepgram_url", "wss://api.deepgram.com")
        if problem is not None:
            raise ValueError(problem)
        return value.rstrip("/")

    @field_validator("openai_base_url")
    @classmethod
    def _openai_url_shape(cls, value: str | None) -> str | None:
        from voiceagent.services.reachability import check_url

        if value is None:
            return None
        example = "https://api.openai.com/v1"
        problem = check_url(value, ("http", "https"), "OPENAI_BASE_URL", example)
        if problem is not None:
            raise ValueError(problem)
        return value


class FallbackSettings(BaseModel):
    """Providers tried after each stage's primary, and what counts as the primary failing.

    A chain of ``None`` means the default: a cloud primary falls back to the local stage, a
    local primary has no fallback. ``[]`` turns fallback off; from the environment a chain is
    comma-separated, e.g. ``VOICEAGENT_FALLBACK__TTS=local``.
    """

    stt: list[Literal["local", "deepgram"]] | None = None
    llm: list[Literal["local", "openai"]] | None = None
    tts: list[Literal["local", "deepgram"]] | None = None
    stt_timeout_s: float = Field(2.5, gt=0)
    """The caller has been speaking this long with no transcript: the STT is failing."""
    llm_first_token_timeout_s: float = Field(3.0, gt=0)
    """No first token this long after a generation started: retried on the next LLM."""
    apology_text: str = (
        "I'm sorry, I'm having trouble answering right now. Could you say that again?"
    )
    """Spoken as the reply when every LLM of the chain failed."""

    @field_validator("stt", "llm", "tts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


class AgentSettings(BaseModel):
    """What the bundled agent says and does."""

    system_prompt: str = (
        "You are the receptionist of Bright Smile Dental, speaking with a caller on the phone. "
        "Reply in one or two short spoken sentences, plain words only: no lists, no markdown. "
        "Begin every reply with a brief acknowledgement such as 'Sure,' or 'Of course,' or "
        "'I see,' and then answer. Office facts: open Monday to Thursday 8 am to 5 pm and "
        "Friday 8 am to 3 pm; a teeth cleaning costs 120 dollars without insurance; next "
        "Tuesday we have openings at 2 pm and 4 pm; the office is at 42 Main Street. "
        "Offer to book an appointment when it helps. If you do not know, say so briefly."
    )
    greeting: str = "Hello, thanks for calling Bright Smile Dental. How can I help you today?"
    max_tokens: int = 80
    temperature: float = 0.3
    tools: bool | Literal["auto"] | list[str] = "auto"
    """The receptionist's tools (check_availability, book_appointment, end_call): True, False,
    a list of names, or "auto": on with a cloud/OpenAI-compatible LLM, off with the local
    Qwen2.5-0.5B, which with ``tool_choice=auto`` answers in prose or writes the call as text."""
    tools_prompt: str | None = None
    """Appended to ``system_prompt`` when tools are advertised; None: a sentence naming each
    advertised tool (``voiceagent.pipelines.receptionist_tools.tools_prompt``)."""
    end_call_max_wait_s: float = Field(20.0, gt=0.0)
    """After ``end_call``, the longest wait for the goodbye to play before hanging up."""

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names(cls, value: Any) -> Any:
        """``VOICEAGENT_AGENT__TOOLS=check_availability,end_call`` lists names."""
        if isinstance(value, str) and value.strip().lower() not in ("auto", "true", "false"):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


class PhoneSettings(BaseModel):
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


class StorageSettings(BaseModel):
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
                "storage.url must be a postgresql:// URL (leave it unset for SQLite in "
                "storage.dir), e.g. postgresql://voiceagent:secret@db.internal:5432/voiceagent"
            )
        return value or None


class Settings(BaseModel):
    """All of voiceagent's configuration."""

    server: ServerSettings = ServerSettings()
    transport: TransportSettings = TransportSettings()
    local: LocalModelSettings = LocalModelSettings()
    cloud: CloudSettings = CloudSettings()
    twilio: TwilioSettings = TwilioSettings()
    telephony: TelephonySettings = TelephonySettings()
    agent: AgentSettings = AgentSettings()
    turns: TurnTaking = Field(default_factory=TurnTaking)
    """Turn-taking: endpointing, speculation, interruption, DTMF, watchdog (one typed model)."""
    storage: StorageSettings = Field(default_factory=StorageSettings)
    fallback: FallbackSettings = FallbackSettings()
    phone: PhoneSettings = PhoneSettings()
    stt: Literal["auto", "local", "deepgram"] = "auto"
    llm: Literal["auto", "local", "openai"] = "auto"
    tts: Literal["auto", "local", "deepgram"] = "auto"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from environment variables, then keyword overrides.

        Raises:
            ValueError: with every invalid field named, on wrong configuration.
        """
        env = dict(os.environ if environ is None else environ)
        data: dict[str, Any] = {}
        for key, value in env.items():
            if not key.startswith("VOICEAGENT_"):
                continue
            path = key[len("VOICEAGENT_") :].lower().split("__")
            node = data
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        well_known = {
            "TWILIO_AUTH_TOKEN": ("server", "twilio_auth_token"),
            "TWILIO_ACCOUNT_SID": ("twilio", "account_sid"),
            "TWILIO_FROM_NUMBER": ("telephony", "from_number"),
            "PUBLIC_HOST": ("server", "public_host"),
            "DEEPGRAM_API_KEY": ("cloud", "deepgram_api_key"),
            "OPENAI_API_KEY": ("cloud", "openai_api_key"),
            "OPENAI_BASE_URL": ("cloud", "openai_base_url"),
        }
        for key, (section, name) in well_known.items():
            if env.get(key):
                data.setdefault(section, {}).setdefault(name, env[key])
        for key, value in overrides.items():
            if isinstance(value, dict):
                data.setdefault(key, {}).update(value)
            elif value is not None:
                data[key] = value
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ValueError(f"invalid voiceagent configuration: {e}") from e
