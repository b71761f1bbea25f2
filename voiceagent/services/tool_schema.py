"""Tool arguments checked against a tool's JSON schema, without dependencies.

Supported keywords: ``type`` (the seven JSON types, or a list of them), ``required``,
``properties``, ``enum``, ``items`` and ``additionalProperties`` (``false`` rejects undeclared
keys; when absent, undeclared keys are dropped so a handler sees only what it declared).
Other keywords are ignored. :func:`check_schema` rejects, at startup, a schema the validator
cannot honour; :func:`validate_arguments` checks one call's arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger

JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, Mapping),
    "null": lambda v: v is None,
}
"""Each JSON type name and the test of a Python value for it."""


def json_type(value: Any) -> str:
    """The JSON type name of ``value`` (its Python type name if it has none)."""
    for name in ("boolean", "integer", "number", "string", "array", "object", "null"):
        if JSON_TYPES[name](value):
            return name
    return type(value).__name__


def check_schema(schema: Any, path: str) -> None:
    """Reject schemas the validator cannot honour (a programming error, raised at startup).

    Raises:
        ValueError: ``schema`` (at ``path``) is not a schema this module can validate.
    """
    if not isinstance(schema, Mapping):
        raise ValueError(f"{path}: a schema must be an object, got {type(schema).__name__}")
    types = schema.get("type")
    for t in types if isinstance(types, list) else [types] if types is not None else []:
        if t not in JSON_TYPES:
            raise ValueError(f"{path}: unknown JSON type {t!r}")
    props = schema.get("properties", {})
    if not isinstance(props, Mapping):
        raise ValueError(f"{path}.properties must be an object")
    for key, sub in props.items():
        check_schema(sub, f"{path}.{key}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ValueError(f"{path}.required must be a list of names")
    missing = [r for r in required if r not in props]
    if missing:
        raise ValueError(f"{path}.required names undeclared properties: {missing}")
    if "items" in schema:
        check_schema(schema["items"], f"{path}[]")
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        check_schema(extra, f"{path}.*")


def validate_arguments(
    arguments: Any, schema: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, list[str]]:
    """Validated arguments of one call (None if invalid) and the list of problems found."""
    errors: list[str] = []
    if not isinstance(arguments, Mapping):
        return None, [f"arguments must be an object, got {json_type(arguments)}"]
    cleaned = validate_object(arguments, schema, "", errors)
    return (None, errors) if errors else (cleaned, errors)


def validate_value(value: Any, schema: Mapping[str, Any], path: str, errors: list[str]) -> Any:
    """Check ``value`` against ``schema``; return it cleaned (undeclared keys dropped)."""
    types = schema.get("type")
    if types is not None:
        allowed = types if isinstance(types, list) else [types]
        if not any(JSON_TYPES[t](value) for t in allowed):
            errors.append(f"{path}: expected {' or '.join(allowed)}, got {json_type(value)}")
            return value
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: must be one of {schema['enum']}, got {value!r}")
    if isinstance(value, Mapping):
        return validate_object(value, schema, path, errors)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [
            validate_value(v, schema["items"], f"{path}[{i}]", errors) for i, v in enumerate(value)
        ]
    return value


def validate_object(
    value: Mapping[str, Any], schema: Mapping[str, Any], path: str, errors: list[str]
) -> dict[str, Any]:
    """Check an object's keys against ``schema``; return the declared (and allowed) ones."""
    props: Mapping[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    prefix = f"{path}." if path else ""
    out: dict[str, Any] = {}
    for name in schema.get("required", []):
        if name not in value:
            errors.append(f"{prefix}{name}: required")
    for key, item in value.items():
        if key in props:
            out[key] = validate_value(item, props[key], f"{prefix}{key}", errors)
        elif extra is False:
            errors.append(f"{prefix}{key}: not a parameter")
        elif isinstance(extra, Mapping):
            out[key] = validate_value(item, extra, f"{prefix}{key}", errors)
        elif extra is True:
            out[key] = item
        else:
            logger.debug(f"ignoring undeclared tool argument {prefix}{key}")
    return out
