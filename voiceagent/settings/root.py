"""``Settings``: every section, read from the environment by pydantic-settings, checked strictly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError

from voiceagent.settings.agent import AgentSettings, TelephonySettings
from voiceagent.settings.base import DELIMITER, PREFIX, provider_variables
from voiceagent.settings.errors import (
    SettingsError,
    source_problem,
    unknown_variables,
    validation_problems,
)
from voiceagent.settings.providers import (
    CloudSettings,
    FallbackSettings,
    LocalModelSettings,
    TwilioSettings,
)
from voiceagent.settings.server import (
    PhoneSettings,
    ServerSettings,
    StorageSettings,
    TransportSettings,
)
from voiceagent.turns.options import TurnTaking

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("voiceagent_environ", default=None)
"""The mapping ``Settings.from_env(environ)`` reads instead of ``os.environ``."""


def _environ() -> Mapping[str, str]:
    environ = _ENVIRON.get()
    return os.environ if environ is None else environ


class _Environment(EnvSettingsSource):
    """pydantic-settings' ``VOICEAGENT_<SECTION>__<FIELD>`` source, over ``from_env``'s mapping."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        environ = _ENVIRON.get()
        if environ is not None:  # names are matched case-insensitively, as the base class does
            self.env_vars = {name.lower(): value for name, value in environ.items()}

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        """JSON of a list or object value; a bad one is named by its field."""
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as e:
            raise ValueError(f"{field_name}: must be JSON ({e})") from e


class _ProviderVariables(PydanticBaseSettingsSource):
    """The providers' own variables (``TWILIO_AUTH_TOKEN``, ``DEEPGRAM_API_KEY``...).

    Each is declared on its section's field (``provider_alias``); pydantic-settings reads
    aliases of top-level fields only, so this source maps them into their sections. An empty
    variable counts as unset; a ``VOICEAGENT_`` variable for the same field wins.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: values are read per section in ``__call__``."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """``{section: {field: value}}`` for each provider variable set."""
        environ = _environ()
        data: dict[str, Any] = {}
        for (section, name), variable in provider_variables(self.settings_cls).items():
            if environ.get(variable):
                data.setdefault(section, {})[name] = environ[variable]
        return data


class Settings(BaseSettings):
    """All of voiceagent's configuration.

    Read from ``VOICEAGENT_<SECTION>__<FIELD>`` variables (``VOICEAGENT_SERVER__PORT=9000``,
    ``VOICEAGENT_TURNS__ENDPOINTING__MIN_SILENCE_S=0.6``) and the providers' own variables
    (``TWILIO_AUTH_TOKEN``, ``TWILIO_ACCOUNT_SID``, ``TWILIO_FROM_NUMBER``, ``DEEPGRAM_API_KEY``,
    ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``PUBLIC_HOST``); keyword arguments win over both.
    An unknown setting or variable, or a bad value, raises :class:`SettingsError` naming the
    variable.
    """

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_nested_delimiter=DELIMITER,
        case_sensitive=False,
        extra="forbid",
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    transport: TransportSettings = Field(default_factory=TransportSettings)
    local: LocalModelSettings = Field(default_factory=LocalModelSettings)
    cloud: CloudSettings = Field(default_factory=CloudSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    telephony: TelephonySettings = Field(default_factory=TelephonySettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    turns: TurnTaking = Field(default_factory=TurnTaking)
    """Turn-taking: endpointing, speculation, interruption, DTMF, watchdog (one typed model)."""
    storage: StorageSettings = Field(default_factory=StorageSettings)
    fallback: FallbackSettings = Field(default_factory=FallbackSettings)
    phone: PhoneSettings = Field(default_factory=PhoneSettings)
    stt: Literal["auto", "local", "deepgram"] = "auto"
    llm: Literal["auto", "local", "openai"] = "auto"
    tts: Literal["auto", "local", "deepgram"] = "auto"

    def __init__(self, **values: Any) -> None:
        """Read the environment, then ``values``.

        Raises:
            SettingsError: one line per unknown variable or bad value, named by variable.
        """
        environ = _environ()
        problems = unknown_variables(environ, type(self))
        try:
            super().__init__(**values)
        except ValidationError as e:
            found = validation_problems(e, environ, values, type(self))
            problems = {**found, **problems}  # an unknown variable's own line says more
        except SourceError as e:
            problems = {**source_problem(e, environ), **problems}
        if problems:
            raise SettingsError(list(problems.values())) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then ``VOICEAGENT_`` variables, then provider variables."""
        return init_settings, _Environment(settings_cls), _ProviderVariables(settings_cls)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (default: the process environment), then ``overrides``.

        A ``None`` override is ignored; a section given as a dict is merged into what the
        environment set for it.

        Raises:
            SettingsError: one line per unknown variable or bad value, named by variable.
        """
        token = _ENVIRON.set(dict(os.environ) if environ is None else environ)
        try:
            return cls(**{name: value for name, value in overrides.items() if value is not None})
        finally:
            _ENVIRON.reset(token)
