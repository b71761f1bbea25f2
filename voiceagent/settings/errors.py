"""Configuration errors named the way the user wrote them: by environment variable.

pydantic reports a wrong value by field path (``server.port``); people set variables
(``VOICEAGENT_SERVER__PORT=abc``). Each problem becomes one line naming the variable, its
value (secrets masked) and the reason: ``VOICEAGENT_SERVER__PORT=abc: must be an integer``.
A value given in code (``Settings.from_env(server={...})``) is named by its path.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from voiceagent.settings.base import DELIMITER, PREFIX, provider_variables
from voiceagent.settings.masking import masked

NOT_SETTINGS = ("VOICEAGENT_TEST_", "VOICEAGENT_SOFTPHONE_SCREENSHOT")
"""``VOICEAGENT_`` variables that are not settings: the test suite's own (PostgreSQL server,
screenshots)."""


class SettingsError(ValueError):
    """Invalid configuration: ``problems`` holds one line per wrong variable or value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- unknown variables ------------------------------------------------------------------------


def unknown_variables(environ: Mapping[str, str], settings_cls: type[BaseModel]) -> dict[str, str]:
    """``VOICEAGENT_`` variables naming no setting: variable → problem line.

    pydantic-settings reads only the variables of fields it knows and ignores the rest, so a
    typo (``VOICEAGENT_SERVR__PORT``, ``VOICEAGENT_TURNS__ENDPOINTING__MIN_SILNCE_S``) would
    leave the default in effect without a word. Every ``VOICEAGENT_`` variable must therefore
    name a setting, walked through the models here.
    """
    problems: dict[str, str] = {}
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper.startswith(NOT_SETTINGS):
            continue
        path = upper[len(PREFIX) :].lower().split(DELIMITER)
        hint = _unknown_part(settings_cls, path)
        if hint is not None:
            problems[upper] = f"{name}: unknown setting{hint}"
    return problems


def _unknown_part(model: type[BaseModel], path: list[str]) -> str | None:
    """None when ``path`` names a setting of ``model``; else a hint (maybe empty)."""
    annotation: Any = model
    for depth, key in enumerate(path):
        fields = _fields(annotation)
        if fields is None:
            if _is_mapping(annotation):
                return None  # any key: e.g. TELEPHONY__TRANSFER_TARGETS__BILLING
            return ""  # a value has no parts
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            if not close:
                return ""
            guess = DELIMITER.join([*path[:depth], close[0], *path[depth + 1 :]]).upper()
            return f" (did you mean {PREFIX}{guess}?)"
        annotation = fields[key]
    return None


def _fields(annotation: Any) -> dict[str, Any] | None:
    """Names (and aliases) → annotations of the model inside ``annotation``, if there is one."""
    for candidate in _members(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            names: dict[str, Any] = {}
            for name, field in candidate.model_fields.items():
                names[name] = field.annotation
            return names
    return None


def _is_mapping(annotation: Any) -> bool:
    return any(get_origin(c) is dict or c is dict for c in _members(annotation))


def _members(annotation: Any) -> list[Any]:
    """``annotation`` without ``Annotated``/``Optional`` wrappers: its union members."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


# --- validation errors ------------------------------------------------------------------------


def describe(error: ErrorDetails) -> str:
    """The reason of one pydantic error, short and in plain words."""
    kind, ctx = error["type"], error.get("ctx") or {}
    reasons = {
        "extra_forbidden": "unknown setting",
        "int_parsing": "must be an integer",
        "int_type": "must be an integer",
        "int_from_float": "must be an integer",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "greater_than": "must be greater than {gt}",
        "greater_than_equal": "must be at least {ge}",
        "less_than": "must be less than {lt}",
        "less_than_equal": "must be at most {le}",
        "literal_error": "must be {expected}",
        "string_pattern_mismatch": "must match {pattern}",
    }
    if kind in reasons:
        return reasons[kind].format(**ctx)
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    message = error["msg"]
    return message[:1].lower() + message[1:]


def validation_problems(
    error: ValidationError,
    environ: Mapping[str, str],
    overrides: Mapping[str, Any],
    settings_cls: type[BaseModel],
) -> dict[str, str]:
    """One problem line per wrong setting (the first reason when pydantic gives several)."""
    env = {name.upper(): (name, value) for name, value in environ.items()}
    providers = provider_variables(settings_cls)
    problems: dict[str, str] = {}
    for detail in error.errors():
        path = [part for part in detail["loc"] if isinstance(part, str)]
        label, shown = _where(path, env, overrides, providers)
        key = label.upper()
        if key in problems:
            continue
        reason = describe(detail)
        if shown is None:
            shown = _shown(detail.get("input"))
        named = label.split(",")[0].split("=")[0]
        if named in reason:  # the validator's own message names the variable already
            problems[key] = reason
        elif shown is None or detail["type"] == "extra_forbidden":
            problems[key] = f"{label}: {reason}"
        else:
            problems[key] = f"{label}={masked(label, shown)}: {reason}"
    return problems


def _where(
    path: list[str],
    env: Mapping[str, tuple[str, str]],
    overrides: Mapping[str, Any],
    providers: Mapping[tuple[str, str], str],
) -> tuple[str, str | None]:
    """Who set the value at ``path``: ``(variable or dotted path, raw value if known)``."""
    if _given(overrides, path):
        return ".".join(path), None
    for depth in range(len(path), 0, -1):  # the variable itself, or a JSON value above it
        variable = PREFIX + DELIMITER.join(path[:depth]).upper()
        if variable in env:
            return env[variable]
    provider = providers.get((path[0], path[1])) if len(path) >= 2 else None
    if provider is not None and provider in env:
        return env[provider]
    below = PREFIX + DELIMITER.join(path).upper() + DELIMITER
    named = sorted(pair for upper, pair in env.items() if upper.startswith(below))
    if named:  # a check across fields (e.g. max_wait_s >= min_silence_s): the variables set
        return ", ".join(f"{name}={masked(name, value)}" for name, value in named), None
    return ".".join(path) or "settings", None


def _given(overrides: Mapping[str, Any], path: list[str]) -> bool:
    node: Any = overrides
    for part in path:
        if not isinstance(node, Mapping):
            return True  # a model or value given in code holds this part
        if part not in node:
            return False
        node = node[part]
    return bool(path)


def _shown(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, BaseModel)):
        return None
    return str(value)


# --- errors of the environment source ---------------------------------------------------------

_FIELD = re.compile(r'field "(\w+)"')


def source_problem(error: Exception, environ: Mapping[str, str]) -> dict[str, str]:
    """A value pydantic-settings could not decode (a JSON list or object), named by variable."""
    cause = error.__cause__ or error
    leaf, _, reason = str(cause).partition(": ")
    found = _FIELD.search(str(error))
    section = PREFIX + (found.group(1).upper() if found else "")
    for name, value in sorted(environ.items()):
        upper = name.upper()
        if upper.startswith(section) and (upper == section or upper.endswith(f"__{leaf.upper()}")):
            return {upper: f"{name}={masked(name, value)}: {reason or cause}"}
    return {section: f"{section}: {cause}"}
