"""Checks of one scenario field at a time, with errors naming the file, call, line and field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from loguru import logger

from voiceagent.eval.scripted_call import Pattern


class ScenarioError(ValueError):
    """A scenario file is unreadable or wrong; the message names the file, call, line, field."""


class FieldChecker:
    """Checks fields of a scenario file; its errors point at the offending field."""

    def __init__(self, source: Path, call: str = "", line: int | None = None) -> None:
        self.source, self.call, self.line = source, call, line

    def error(self, field: str, problem: str) -> ScenarioError:
        """A logged :class:`ScenarioError`: ``problem`` with ``field`` where it is."""
        parts = [str(self.source)]
        if self.call:
            parts.append(self.call)
        if self.line is not None:
            parts.append(f"line {self.line + 1}")
        message = f"{': '.join(parts)}: {field}: {problem}" if field else f"{parts[0]}: {problem}"
        logger.warning(f"eval scenario: {message}")
        return ScenarioError(message)

    def table(self, value: Any, field: str, allowed: set[str]) -> dict[str, Any]:
        """``value`` as a table of only ``allowed`` keys."""
        if not isinstance(value, dict):
            raise self.error(field, f"expected a table, got {shown(value)}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            prefix = f"{field}." if field else ""
            raise self.error(
                f"{prefix}{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(allowed))})"
            )
        return value

    def number(self, value: Any, field: str, *, minimum: float, strict: bool = False) -> float:
        """``value`` as a number ≥ ``minimum`` (> when ``strict``)."""
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or value < minimum or (strict and value == minimum):
            bound = f"> {minimum:g}" if strict else f"≥ {minimum:g}"
            raise self.error(field, f"expected a number {bound}, got {shown(value)}")
        return float(value)

    def flag(self, value: Any, field: str) -> bool:
        """``value`` as true or false."""
        if not isinstance(value, bool):
            raise self.error(field, f"expected true or false, got {shown(value)}")
        return value

    def text(self, value: Any, field: str) -> str:
        """``value`` as non-empty text, stripped."""
        if not isinstance(value, str) or not value.strip():
            raise self.error(field, f"expected non-empty text, got {shown(value)}")
        return value.strip()

    def patterns(self, value: Any, field: str) -> tuple[Pattern, ...]:
        """``value`` (one or a list) as words or ``/regex/`` patterns."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise self.error(field, f"expected a list of words or /regex/, got {shown(value)}")
        out = []
        for n, item in enumerate(items):
            if not isinstance(item, str):
                raise self.error(f"{field}[{n}]", f"expected text, got {shown(item)}")
            try:
                out.append(Pattern.parse(item))
            except (re.error, ValueError) as e:
                raise self.error(f"{field}[{n}]", f"bad pattern {item!r}: {e}") from e
        return tuple(out)


def shown(value: Any) -> str:
    """``value`` with its type, cut short, for error messages."""
    return f"{type(value).__name__} {value!r}"[:80]
