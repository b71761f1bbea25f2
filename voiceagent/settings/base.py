"""What every settings section shares: unknown fields rejected, list parsing, provider variables."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict
from pydantic.fields import FieldInfo

PREFIX = "VOICEAGENT_"
"""Every setting is ``VOICEAGENT_<SECTION>__<FIELD>`` (``__`` between nested names)."""
DELIMITER = "__"


class Section(BaseModel):
    """A settings section: a field it does not have is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


def split_list(value: Any) -> Any:
    """``"a, b,c"`` → ``["a", "b", "c"]`` (the environment's spelling of a list); others as is."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def provider_alias(field_name: str, variable: str) -> AliasChoices:
    """Let a section field also be set by a provider's own variable (e.g. ``TWILIO_AUTH_TOKEN``).

    The variable is declared on the field (as an upper-case alias choice) and read by the
    ``Settings`` source for provider variables; the field's own name stays valid everywhere.
    """
    return AliasChoices(field_name, variable)


def provider_variable(field: FieldInfo) -> str | None:
    """The provider variable declared on ``field`` with :func:`provider_alias`, if any."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        for choice in alias.choices:
            if isinstance(choice, str) and choice.isupper():
                return choice
    return None


def provider_variables(settings_cls: type[BaseModel]) -> dict[tuple[str, str], str]:
    """``(section, field) → variable`` for every field fed by a provider variable."""
    found: dict[tuple[str, str], str] = {}
    for section, field in settings_cls.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name, sub in model.model_fields.items():
            variable = provider_variable(sub)
            if variable is not None:
                found[(section, name)] = variable
    return found
