"""The settings in effect as people read them: ``VOICEAGENT_…=value`` lines, secrets masked."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import NoDecode

from voiceagent.settings.base import DELIMITER, PREFIX, provider_variable
from voiceagent.settings.masking import masked
from voiceagent.settings.root import Settings


@dataclass(frozen=True)
class ShownSetting:
    """One setting: its section, variable, value as shown (None: unset), and who set it."""

    section: str
    variable: str
    value: str | None
    source: str | None
    """The variable that set it (``VOICEAGENT_…`` or a provider's); None: the default."""


def shown_settings(settings: Settings, environ: Mapping[str, str]) -> list[ShownSetting]:
    """Every setting of ``settings`` in order, secrets masked."""
    env = {name.upper() for name in environ}
    set_provider = {name for name, value in environ.items() if value}
    rows = []
    for path, field, value in _leaves(settings, []):
        variable = PREFIX + DELIMITER.join(path).upper()
        provider = provider_variable(field)
        source = None
        if variable in env:
            source = variable
        elif provider is not None and provider in set_provider:
            source = provider
        section = ".".join(path[:-1]) or "stages"
        text = None if value is None else masked(variable, _text(field, value))
        rows.append(ShownSetting(section, variable, text, source))
    return rows


def _leaves(model: BaseModel, path: list[str]) -> Iterator[tuple[list[str], FieldInfo, Any]]:
    """``(path, field, value)`` of every non-model value, scalars of a model before sub-models."""
    fields = type(model).model_fields.items()
    nested = []
    for name, field in fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            nested.append((name, value))
        else:
            yield [*path, name], field, value
    for name, value in nested:
        yield from _leaves(value, [*path, name])


def _text(field: FieldInfo, value: Any) -> str:
    """``value`` spelled as its environment variable takes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Path):
        return str(value)
    commas = NoDecode in field.metadata  # the comma-separated lists and NAME=VALUE maps
    if isinstance(value, dict):
        if commas:
            return ",".join(f"{key}={item}" for key, item in value.items())
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        if commas:
            return ",".join(str(item) for item in value)
        return json.dumps(list(value))
    return str(value).replace("\n", "\\n")


def render_settings(rows: list[ShownSetting]) -> Iterator[str]:
    """Text lines: a ``[section]`` header, then ``VARIABLE=value  # from X`` per setting."""
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            yield ""
            yield f"[{section}]"
        line = f"{row.variable}=" if row.value is not None else f"{row.variable}"
        if row.value is not None:
            line += row.value
        notes = []
        if row.value is None:
            notes.append("unset")
        if row.source is not None:
            notes.append(f"from {row.source}")
        if notes:
            line = f"{line:<60}  # {', '.join(notes)}"
        yield line


def masked_dump(settings: Settings) -> dict[str, Any]:
    """``settings`` as JSON-ready data with every secret masked."""

    def walk(node: Any, name: str) -> Any:
        if isinstance(node, dict):
            return {key: walk(value, key) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value, name) for value in node]
        if isinstance(node, str):
            return masked(name, node)
        return node

    return walk(settings.model_dump(mode="json"), "")
