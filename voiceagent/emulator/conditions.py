"""Phone-line conditions a caller calls under: noise, speakerphone echo, loss, quiet line, voice.

A :class:`LineCondition` is named and every field is optional (unset: the clean line's way).
Built-in ones (``BUILTIN``) are used by name; any field can be set after a colon::

    office                       office noise at 15 dB SNR
    street:snr_db=5              street noise at 5 dB
    speakerphone:echo_level_db=-6
    lossy:loss=0.1,jitter_ms=60
    noise=babble,snr_db=10       an unnamed condition ("custom")

Scenario files may define their own in a ``[conditions.NAME]`` table. Conditions combine
(:meth:`LineCondition.over`): a run's condition is laid over a scenario's own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from voiceagent.emulator.noise import KINDS as NOISE_KINDS

VOICE_KINDS = ("piper", "espeak")


@dataclass(frozen=True)
class LineCondition:
    """How the caller's line sounds and behaves.

    Attributes:
        name: For reports.
        noise: Background noise (``office``, ``street``, ``babble``), heard all call long.
        snr_db: Caller speech level over the noise.
        echo_delay_ms: The agent's own voice comes back through the caller's microphone
            (a speakerphone) this long after the caller heard it...
        echo_level_db: ...this much quieter than it was played.
        loss: Share of the caller's 20 ms media messages lost before they reach the server.
        loss_burst: Mean length of a loss burst in messages (1: independent losses).
        jitter_ms: Mean extra delay of a media message (order kept: they arrive in bunches).
        gain_db: The whole line's level (negative: a quiet line).
        voice: Who speaks the ``say`` lines: ``piper`` (the bundled voice), ``piper:0.8``
            (faster: length scale 0.8) or ``espeak:VOICE`` (e.g. ``espeak:en-gb-scotland``,
            ``espeak:en-us+f3``). Lines given as recordings keep their own voice.
        seed: Seed of the noise and losses (the same condition sounds the same every run).
    """

    name: str = "clean"
    noise: str | None = None
    snr_db: float = 15.0
    echo_delay_ms: float | None = None
    echo_level_db: float = -12.0
    loss: float = 0.0
    loss_burst: float = 1.0
    jitter_ms: float = 0.0
    gain_db: float = 0.0
    voice: str | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        if self.noise is not None and self.noise not in NOISE_KINDS:
            raise ValueError(f"noise: {self.noise!r} is not one of {', '.join(NOISE_KINDS)}")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss: {self.loss} is not within 0 ≤ loss < 1")
        if self.loss_burst < 1.0:
            raise ValueError(f"loss_burst: {self.loss_burst} must be ≥ 1 message")
        if self.jitter_ms < 0 or (self.echo_delay_ms is not None and self.echo_delay_ms < 0):
            raise ValueError("jitter_ms and echo_delay_ms must be ≥ 0")
        if self.voice is not None and self.voice.split(":", 1)[0] not in VOICE_KINDS:
            raise ValueError(f"voice: {self.voice!r} is not piper, piper:SCALE or espeak:VOICE")

    @property
    def is_clean(self) -> bool:
        """Nothing about the line differs from a clean line with the default voice."""
        fields = dataclasses.asdict(self)
        defaults = dataclasses.asdict(LineCondition())
        return all(fields[k] == defaults[k] for k in fields if k not in ("name", "seed"))

    @property
    def alters_audio(self) -> bool:
        """Whether the caller's audio is processed on its way (noise, echo, gain)."""
        return self.noise is not None or self.echo_delay_ms is not None or self.gain_db != 0.0

    @property
    def alters_network(self) -> bool:
        """Whether media messages are lost or delayed."""
        return self.loss > 0.0 or self.jitter_ms > 0.0

    def over(self, base: LineCondition | None) -> LineCondition:
        """The condition laid over ``base``: the fields set here win, the name tells both."""
        if base is None or base.is_clean:
            return self
        if self.is_clean:
            return base
        defaults = dataclasses.asdict(LineCondition())
        merged = dataclasses.asdict(base)
        for key, value in dataclasses.asdict(self).items():
            if key not in ("name",) and value != defaults[key]:
                merged[key] = value
        merged["name"] = f"{base.name}+{self.name}"
        return LineCondition(**merged)

    def describe(self) -> str:
        """What differs from a clean line, in words."""
        parts = []
        if self.noise:
            parts.append(f"{self.noise} noise at {self.snr_db:g} dB SNR")
        if self.echo_delay_ms is not None:
            parts.append(f"echo {self.echo_delay_ms:g} ms, {self.echo_level_db:g} dB")
        if self.loss:
            burst = f" in bursts of {self.loss_burst:g}" if self.loss_burst > 1 else ""
            parts.append(f"{100 * self.loss:g} % media lost{burst}")
        if self.jitter_ms:
            parts.append(f"jitter {self.jitter_ms:g} ms")
        if self.gain_db:
            parts.append(f"line level {self.gain_db:+g} dB")
        if self.voice:
            parts.append(f"voice {self.voice}")
        return ", ".join(parts) or "clean line"


BUILTIN: dict[str, LineCondition] = {
    c.name: c
    for c in (
        LineCondition("clean"),
        LineCondition("office", noise="office", snr_db=15.0),
        LineCondition("street", noise="street", snr_db=10.0),
        LineCondition("babble", noise="babble", snr_db=10.0),
        LineCondition("speakerphone", echo_delay_ms=150.0, echo_level_db=-15.0),
        LineCondition("lossy", loss=0.05, loss_burst=2.0, jitter_ms=40.0),
        LineCondition("quiet", gain_db=-20.0),
        LineCondition("scottish", voice="espeak:en-gb-scotland"),
        LineCondition("caribbean", voice="espeak:en-029"),
        LineCondition("fast-talker", voice="piper:0.8"),
    )
}
_FIELDS = {f.name: f.type for f in dataclasses.fields(LineCondition)}


def condition_from_fields(name: str, fields: dict[str, Any]) -> LineCondition:
    """A condition from field values (a TOML table, or parsed ``key=value`` pairs).

    Raises:
        ValueError: an unknown field or a bad value (the message names it).
    """
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (fields: {', '.join(sorted(_FIELDS))})")
    values = {**dataclasses.asdict(LineCondition()), **fields, "name": name}
    for key in ("snr_db", "echo_delay_ms", "echo_level_db", "loss", "loss_burst", "jitter_ms"):
        value = values.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key}: expected a number, got {value!r}")
    for key in ("noise", "voice"):
        if values.get(key) is not None and not isinstance(values[key], str):
            raise ValueError(f"{key}: expected text, got {values[key]!r}")
    return LineCondition(**values)


def parse_condition(spec: str) -> LineCondition:
    """``NAME``, ``NAME:key=value,…`` or ``key=value,…`` (see the module docstring).

    Raises:
        ValueError: an unknown name or field, or a bad value.
    """
    spec = spec.strip()
    name, _, rest = spec.partition(":") if "=" not in spec.split(":", 1)[0] else ("", "", spec)
    base = None
    if name:
        base = BUILTIN.get(name)
        if base is None:
            raise ValueError(f"unknown condition {name!r} (built in: {', '.join(BUILTIN)})")
        if not rest:
            return base
    fields: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = pair.partition("=")
        if not eq or key.strip() not in _FIELDS:
            raise ValueError(f"{pair!r}: expected key=value with a key of {', '.join(_FIELDS)}")
        fields[key.strip()] = _value(key.strip(), raw.strip())
    label = spec if len(spec) <= 40 else (name or "custom")
    merged = {**(dataclasses.asdict(base) if base else {}), **fields}
    merged.pop("name", None)
    return condition_from_fields(label, merged)


def _value(key: str, raw: str) -> Any:
    if key in ("noise", "voice", "name"):
        return raw or None
    if key == "seed":
        return int(raw)
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"{key}: expected a number, got {raw!r}") from e
