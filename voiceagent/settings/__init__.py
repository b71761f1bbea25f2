"""Typed settings with defaults that work offline; environment variables override.

Each stage owns a small settings model (a section); ``Settings`` composes them on
pydantic-settings. Every setting is ``VOICEAGENT_<SECTION>__<FIELD>`` (nested deeper with
``__``: ``VOICEAGENT_TURNS__ENDPOINTING__MIN_SILENCE_S``), plus the providers' own variables
(``TWILIO_AUTH_TOKEN``, ``TWILIO_ACCOUNT_SID``, ``TWILIO_FROM_NUMBER``, ``DEEPGRAM_API_KEY``,
``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``PUBLIC_HOST``). Unknown settings and variables and
bad values raise :class:`SettingsError`, one line per problem, named by variable.
"""

from voiceagent.settings.agent import (
    DEFAULT_GREETING,
    DEFAULT_OUTBOUND_GREETING,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_VOICEMAIL_MESSAGE,
    AgentSettings,
    TelephonySettings,
)
from voiceagent.settings.errors import SettingsError
from voiceagent.settings.providers import (
    CloudSettings,
    FallbackSettings,
    LocalModelSettings,
    TwilioSettings,
)
from voiceagent.settings.root import Settings
from voiceagent.settings.server import (
    PIPELINE_SAMPLE_RATE,
    PhoneSettings,
    ServerSettings,
    StorageSettings,
    TransportSettings,
    default_storage_dir,
)

__all__ = [
    "DEFAULT_GREETING",
    "DEFAULT_OUTBOUND_GREETING",
    "DEFAULT_SYSTEM_PROMPT",
    "DEFAULT_VOICEMAIL_MESSAGE",
    "PIPELINE_SAMPLE_RATE",
    "AgentSettings",
    "CloudSettings",
    "FallbackSettings",
    "LocalModelSettings",
    "PhoneSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "TelephonySettings",
    "TransportSettings",
    "TwilioSettings",
    "default_storage_dir",
]
