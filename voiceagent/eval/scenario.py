"""Eval scenarios: scripted calls and what the agent must do, read from TOML files.

A file holds one or more ``[[call]]`` tables; each has ``[[call.line]]`` tables, the caller's
lines in order, and optional checks on the greeting. A line is what the caller says (``say``,
synthesized offline, or ``audio``, a WAV path relative to the file) and how: ``pause_after_s``
of quiet that ends the agent's reply, ``continues`` (a mid-sentence pause: go on without waiting
for a reply), ``barge_in_after_s`` (talk over the agent's reply this long after it starts) or
``backchannel_after_s`` (an "uh-huh" over the reply, which must not take the turn), ``dtmf``.
Its ``expect`` table checks the agent's reply to it and what the agent understood::

    [[call]]
    name = "friday-hours"
    greeting = { contains = ["Bright Smile"], interrupted = false }

    [[call.line]]
    say = "What time do you close on Fridays?"
    expect = { contains_any = ["3", "three"], within_ms = 2500, max_wer = 0.25 }

Text patterns match case-insensitively as whole words; ``/.../`` is a regular expression.
``[defaults]`` sets ``pause_after_s`` and, in ``[defaults.expect]``, ``within_ms`` and
``max_wer`` for every line that ends a caller turn. Every mistake is a ``ScenarioError``
naming the file, the call, the line and the field. What a scenario holds once read:
:mod:`voiceagent.eval.scripted_call` (re-exported here).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from voiceagent.emulator.conditions import LineCondition, condition_from_fields, parse_condition
from voiceagent.emulator.recordings import (
    RecordingUnavailable,
    clip_path,
    is_recording,
    joined_words,
)
from voiceagent.emulator.script import DTMF_DIGITS
from voiceagent.eval.scenario_fields import FieldChecker, ScenarioError, shown
from voiceagent.eval.scripted_call import Expect, LineKind, Pattern, Scenario, ScenarioLine

__all__ = [
    "DEFAULT_PAUSE_AFTER_S",
    "FieldChecker",
    "Expect",
    "LineKind",
    "Pattern",
    "Scenario",
    "ScenarioError",
    "ScenarioLine",
    "load_scenarios",
    "parse_scenarios",
]

DEFAULT_PAUSE_AFTER_S = 1.2
_TOP_KEYS = {"defaults", "call", "conditions"}
_DEFAULT_KEYS = {"pause_after_s", "expect"}
_DEFAULT_EXPECT_KEYS = {"within_ms", "max_wer"}
_CALL_KEYS = {"name", "description", "category", "condition", "greeting", "line"}
_LINE_KEYS = {
    "say",
    "audio",
    "pause_after_s",
    "continues",
    "barge_in_after_s",
    "backchannel_after_s",
    "dtmf",
    "silent",
    "expect",
}
_REPLY_TEXT_KEYS = ("contains", "contains_any", "not_contains")
_EXPECT_KEYS = {
    *_REPLY_TEXT_KEYS,
    "interrupted",
    "within_ms",
    "max_wer",
    "no_reply",
    "committed",
    "tools",
}
_GREETING_KEYS = {*_REPLY_TEXT_KEYS, "interrupted"}


def load_scenarios(paths: Iterable[str | Path]) -> list[Scenario]:
    """Read every scenario of ``paths`` (files, or folders of ``*.toml``), in order.

    Raises:
        ScenarioError: a file is missing, not TOML, or wrong; or two calls share a name.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                raise FieldChecker(path).error("", "no *.toml scenario files in this folder")
            files.extend(found)
        else:
            files.append(path)
    scenarios: list[Scenario] = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise FieldChecker(path).error("", f"cannot read: {e.strerror or e}") from e
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise FieldChecker(path).error("", f"not valid TOML: {e}") from e
        for scenario in parse_scenarios(data, path):
            if scenario.name in seen:
                raise FieldChecker(path, f"call {scenario.name!r}").error(
                    "name", f"already used by a call in {seen[scenario.name]}"
                )
            seen[scenario.name] = path
            scenarios.append(scenario)
    return scenarios


def parse_scenarios(data: dict[str, Any], source: Path) -> list[Scenario]:
    """Validate one file's parsed TOML into scenarios (``source`` anchors relative WAV paths).

    Raises:
        ScenarioError: naming the first wrong field.
    """
    where = FieldChecker(source)
    where.table(data, "", _TOP_KEYS)
    defaults = where.table(data.get("defaults", {}), "defaults", _DEFAULT_KEYS)
    pause = DEFAULT_PAUSE_AFTER_S
    if "pause_after_s" in defaults:
        pause = where.number(defaults["pause_after_s"], "defaults.pause_after_s", minimum=0)
    default_expect = where.table(
        defaults.get("expect", {}), "defaults.expect", _DEFAULT_EXPECT_KEYS
    )
    if "within_ms" in default_expect:
        where.number(
            default_expect["within_ms"], "defaults.expect.within_ms", minimum=0, strict=True
        )
    if "max_wer" in default_expect:
        where.number(default_expect["max_wer"], "defaults.expect.max_wer", minimum=0)
    conditions = _conditions(where, data.get("conditions", {}))
    calls = data.get("call")
    if not isinstance(calls, list) or not calls:
        raise where.error("call", "no [[call]] tables: a scenario file needs at least one call")
    return [_call(where, n, raw, pause, default_expect, conditions) for n, raw in enumerate(calls)]


def _conditions(where: FieldChecker, raw: Any) -> dict[str, LineCondition]:
    """The file's own ``[conditions.NAME]`` tables."""
    if not isinstance(raw, dict):
        raise where.error("conditions", f"expected tables of conditions, got {shown(raw)}")
    out = {}
    for name, fields in raw.items():
        if not isinstance(fields, dict):
            raise where.error(f"conditions.{name}", f"expected a table, got {shown(fields)}")
        try:
            out[name] = condition_from_fields(name, fields)
        except (TypeError, ValueError) as e:
            raise where.error(f"conditions.{name}", str(e)) from e
    return out


def _call(
    file: FieldChecker,
    n: int,
    raw: Any,
    pause: float,
    default_expect: dict[str, Any],
    conditions: dict[str, LineCondition],
) -> Scenario:
    label = f"call {n + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str) and raw["name"].strip():
        label = f"call {raw['name'].strip()!r}"
    where = FieldChecker(file.source, label)
    table = where.table(raw, "", _CALL_KEYS)
    if "name" not in table:
        raise where.error("name", "missing: every call needs a name")
    name = where.text(table["name"], "name")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise where.error("description", f"expected text, got {shown(description)}")
    category = where.text(table["category"], "category") if "category" in table else ""
    condition = None
    if "condition" in table:
        named = where.text(table["condition"], "condition")
        condition = conditions.get(named)
        if condition is None:
            try:
                condition = parse_condition(named)
            except ValueError as e:
                raise where.error("condition", str(e)) from e
    greeting = None
    if "greeting" in table:
        greeting = _expect(
            where, where.table(table["greeting"], "greeting", _GREETING_KEYS), "greeting"
        )
    raw_lines = table.get("line")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise where.error("line", "no [[call.line]] tables: a call needs at least one caller line")
    lines = tuple(
        _line(FieldChecker(file.source, label, i), i, item, pause, default_expect)
        for i, item in enumerate(raw_lines)
    )
    if lines[-1].kind is LineKind.CONTINUES:
        raise FieldChecker(file.source, label, len(lines) - 1).error(
            "continues", "the last line cannot continue: no line follows it"
        )
    return Scenario(name, description.strip(), file.source, lines, greeting, category, condition)


def _line(
    where: FieldChecker, index: int, raw: Any, pause: float, default_expect: dict[str, Any]
) -> ScenarioLine:
    table = where.table(raw, "", _LINE_KEYS)
    say = where.text(table["say"], "say") if "say" in table else ""
    audio, clips = _audio(where, table.get("audio"))
    if clips and not say:
        say = joined_words(list(clips))
    spoken = "say" in table or "audio" in table
    silent = where.flag(table["silent"], "silent") if "silent" in table else False
    if silent and (spoken or "dtmf" in table):
        raise where.error("silent", "a silent line says nothing: no `say`, `audio` or `dtmf`")
    if not spoken and "dtmf" not in table and not silent:
        raise where.error(
            "say",
            "missing: a line needs `say` (text to speak), `audio` (a WAV), `dtmf` or "
            "`silent = true`",
        )
    if "pause_after_s" in table:
        pause = where.number(table["pause_after_s"], "pause_after_s", minimum=0)
    kind, over_agent = _kind(where, table)
    dtmf = table.get("dtmf", "")
    if not isinstance(dtmf, str) or set(dtmf) - DTMF_DIGITS:
        raise where.error("dtmf", f"expected keypad digits 0-9 * #, got {shown(dtmf)}")
    raw_expect = where.table(table.get("expect", {}), "expect", _EXPECT_KEYS)
    if kind.ends_turn:
        defaults = dict(default_expect)
        if not say:
            defaults.pop("max_wer", None)  # nothing to compare the transcript with
        raw_expect = {**defaults, **raw_expect}
    expect = _expect(where, raw_expect, "expect")
    _check_fits(where, kind, say, raw_expect)
    return ScenarioLine(index, say, audio, pause, kind, over_agent, dtmf, expect, clips)


def _audio(where: FieldChecker, raw: Any) -> tuple[Path | None, tuple[str, ...]]:
    """A WAV path, or Asterisk clips (``asterisk:NAME`` or a list of them) joined."""
    if raw is None:
        return None, ()
    items = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, list) or (isinstance(raw, str) and is_recording(raw)):
        clips = []
        for n, item in enumerate(items):
            if not isinstance(item, str) or not is_recording(item):
                field = f"audio[{n}]" if isinstance(raw, list) else "audio"
                raise where.error(field, f"expected asterisk:NAME, got {shown(item)}")
            try:
                clip_path(item)
            except RecordingUnavailable as e:
                raise where.error("audio", str(e)) from e
            clips.append(item)
        if not clips:
            raise where.error("audio", "an empty list of clips")
        return None, tuple(clips)
    audio = Path(where.text(raw, "audio"))
    if not audio.is_absolute():
        audio = where.source.parent / audio
    if not audio.is_file():
        raise where.error("audio", f"no such WAV file: {audio}")
    return audio, ()


def _kind(where: FieldChecker, table: dict[str, Any]) -> tuple[LineKind, float | None]:
    continues = where.flag(table["continues"], "continues") if "continues" in table else False
    barge = "barge_in_after_s" in table
    backchannel = "backchannel_after_s" in table
    if barge and backchannel:
        raise where.error("backchannel_after_s", "a line is a barge-in or a backchannel, not both")
    if continues and (barge or backchannel):
        field = "barge_in_after_s" if barge else "backchannel_after_s"
        raise where.error(field, "a line spoken over the agent cannot also `continues`")
    if barge:
        return LineKind.BARGE_IN, where.number(
            table["barge_in_after_s"], "barge_in_after_s", minimum=0
        )
    if backchannel:
        return LineKind.BACKCHANNEL, where.number(
            table["backchannel_after_s"], "backchannel_after_s", minimum=0
        )
    return (LineKind.CONTINUES if continues else LineKind.TURN), None


def _expect(where: FieldChecker, table: dict[str, Any], prefix: str) -> Expect:
    values: dict[str, Any] = {}
    for key in _REPLY_TEXT_KEYS:
        if key in table:
            values[key] = where.patterns(table[key], f"{prefix}.{key}")
    for key in ("interrupted", "no_reply", "committed"):
        if key in table:
            values[key] = where.flag(table[key], f"{prefix}.{key}")
    if "within_ms" in table:
        values["within_ms"] = where.number(
            table["within_ms"], f"{prefix}.within_ms", minimum=0, strict=True
        )
    if "max_wer" in table:
        values["max_wer"] = where.number(table["max_wer"], f"{prefix}.max_wer", minimum=0)
    if "tools" in table:
        names = table["tools"] if isinstance(table["tools"], list) else [table["tools"]]
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise where.error(
                f"{prefix}.tools", f"expected tool names, got {shown(table['tools'])}"
            )
        values["tools"] = tuple(n.strip() for n in names)
    return Expect(**values)


def _check_fits(where: FieldChecker, kind: LineKind, say: str, expect: dict[str, Any]) -> None:
    """Refuse checks that cannot apply to this kind of line, saying where they belong."""
    reply_keys = [k for k in (*_REPLY_TEXT_KEYS, "interrupted", "within_ms") if k in expect]
    if kind is LineKind.CONTINUES and (reply_keys or "max_wer" in expect):
        key = reply_keys[0] if reply_keys else "max_wer"
        raise where.error(
            f"expect.{key}",
            "this line continues after a pause: put reply and transcript checks on the line "
            "that ends the sentence (use `no_reply` here to check the agent waited)",
        )
    if kind is LineKind.BACKCHANNEL and (reply_keys or "max_wer" in expect or "no_reply" in expect):
        key = next(k for k in (*reply_keys, "max_wer", "no_reply") if k in expect)
        raise where.error(
            f"expect.{key}",
            "a backchannel gets no reply of its own: check the reply it was spoken over on the "
            "line before (e.g. `interrupted = false`), and `committed = false` here",
        )
    if "max_wer" in expect and not say:
        raise where.error(
            "expect.max_wer", "needs `say`: the words the transcript is compared with"
        )
    if expect.get("no_reply") and any(k in expect for k in (*_REPLY_TEXT_KEYS, "within_ms")):
        raise where.error("expect.no_reply", "contradicts the reply checks of the same line")
