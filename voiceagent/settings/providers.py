"""Settings of the providers: the offline stack, cloud services, fallbacks, Twilio's REST API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from voiceagent.settings.base import Section, provider_alias, split_list


class LocalModelSettings(Section):
    """Offline embedded stack (all paths optional: resolved from registry packages)."""

    cache_dir: Path = Path(os.path.expanduser("~/.cache/voiceagent"))
    whisper_model: Literal["tiny.en", "base"] = "tiny.en"
    whisper_model_path: Path | None = None
    whisper_threads: int = Field(2, ge=1)
    whisper_beam_size: int = Field(1, ge=1)
    whisper_short_context: bool = True
    """Encode only the utterance + padding instead of Whisper's 30 s window."""
    partial_interval_s: float = Field(0.35, gt=0.0)
    llm_model: Literal["qwen2.5-0.5b", "qwen2.5-1.5b"] = "qwen2.5-0.5b"
    llm_model_path: Path | None = None
    llm_port: int = Field(0, ge=0, le=65535)
    llm_threads: int = Field(2, ge=1)
    llm_ctx: int = Field(2048, ge=256)
    llm_prefetch: bool = True
    """After each heard agent turn, have the server evaluate the conversation so far
    (``KVPrefetch``): the caller's next turn costs only its own tokens."""
    piper_model_path: Path | None = None
    piper_config_path: Path | None = None


class TwilioSettings(Section):
    """Twilio's REST API (calls, hang-up, transfer); the token is ``server.twilio_auth_token``."""

    account_sid: str | None = Field(
        None, validation_alias=provider_alias("account_sid", "TWILIO_ACCOUNT_SID")
    )
    api_base_url: str = "https://api.twilio.com"
    """Where the twilio SDK's requests go (tests point it at a fake on 127.0.0.1)."""
    timeout_s: float = Field(5.0, gt=0.0, le=30.0)

    @field_validator("api_base_url")
    @classmethod
    def _api_url_shape(cls, value: str) -> str:
        from voiceagent.services.reachability import check_url

        example = "https://api.twilio.com"
        problem = check_url(value, ("http", "https"), "VOICEAGENT_TWILIO__API_BASE_URL", example)
        if problem is not None:
            raise ValueError(problem)
        return value


class CloudSettings(Section):
    """Cloud providers: chosen per stage when their keys are present."""

    deepgram_api_key: str | None = Field(
        None, validation_alias=provider_alias("deepgram_api_key", "DEEPGRAM_API_KEY")
    )
    deepgram_url: str = "wss://api.deepgram.com"
    """Deepgram's base URL (``ws://`` or ``wss://``): STT and TTS sockets are opened below it."""
    deepgram_stt_model: str = "nova-3"
    deepgram_endpointing_ms: int = Field(300, ge=10)
    deepgram_utterance_end_ms: int = Field(1000, ge=1000)
    deepgram_tts_voice: str = "aura-2-thalia-en"
    openai_api_key: str | None = Field(
        None, validation_alias=provider_alias("openai_api_key", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        None, validation_alias=provider_alias("openai_base_url", "OPENAI_BASE_URL")
    )
    openai_model: str = "gpt-4o-mini"

    @field_validator("deepgram_url")
    @classmethod
    def _deepgram_url_shape(cls, value: str) -> str:
        from voiceagent.services.reachability import check_url

        example = "wss://api.deepgram.com"
        problem = check_url(value, ("ws", "wss"), "VOICEAGENT_CLOUD__DEEPGRAM_URL", example)
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


# The environment spells a chain "local,deepgram" (not JSON): NoDecode hands the string to the
# validator below instead of pydantic-settings' JSON decoding.
SttChain = Annotated[list[Literal["local", "deepgram"]] | None, NoDecode]
LlmChain = Annotated[list[Literal["local", "openai"]] | None, NoDecode]
TtsChain = Annotated[list[Literal["local", "deepgram"]] | None, NoDecode]


class FallbackSettings(Section):
    """Providers tried after each stage's primary, and what counts as the primary failing.

    A chain of ``None`` means the default: a cloud primary falls back to the local stage, a
    local primary has no fallback. ``[]`` turns fallback off; from the environment a chain is
    comma-separated, e.g. ``VOICEAGENT_FALLBACK__TTS=local``.
    """

    stt: SttChain = None
    llm: LlmChain = None
    tts: TtsChain = None
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
        return split_list(value)
