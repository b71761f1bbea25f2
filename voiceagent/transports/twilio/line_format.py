"""The audio on a Media Stream: Twilio's 8 kHz μ-law, or 16 kHz PCM16 on a wideband leg we host.

Twilio only ever sends ``audio/x-mulaw`` at 8000 Hz (:data:`MULAW_8K`). A leg served by
voiceagent itself (the browser softphone) may declare wideband audio instead
(:data:`PCM16_16K`: ``audio/x-pcm16le``, 16-bit little-endian samples at 16000 Hz) in the
``start`` message's ``mediaFormat``; the rest of the protocol is unchanged (20 ms media frames,
base64 payloads, marks, clear). Positions in a stream are counted in samples at the line's rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voiceagent.transports.twilio.codec import ULAW_SILENCE, pcm16_to_ulaw, ulaw_to_pcm16

FRAMES_PER_S = 50
"""Media messages carry 20 ms of audio."""


def _pcm16_checked(payload: bytes) -> bytes:
    if len(payload) & 1:
        raise ValueError(f"PCM16 payload of odd length {len(payload)}")
    return payload


@dataclass(frozen=True, slots=True)
class LineFormat:
    """One audio format a Media Stream can carry (mono).

    Attributes:
        name: Short name for logs, settings and the call record (``mulaw-8k``).
        encoding: ``start.mediaFormat.encoding``.
        rate: Samples per second.
        sample_width: Bytes per sample on the wire.
    """

    name: str
    encoding: str
    rate: int
    sample_width: int
    _silence: bytes = field(repr=False)
    _decode: Callable[[bytes], bytes] = field(repr=False)
    _encode: Callable[[bytes], bytes] = field(repr=False)

    @property
    def frame_samples(self) -> int:
        """Samples in one 20 ms media frame."""
        return self.rate // FRAMES_PER_S

    @property
    def frame_bytes(self) -> int:
        """Bytes in one 20 ms media frame."""
        return self.frame_samples * self.sample_width

    @property
    def bytes_per_s(self) -> int:
        """Bytes of one second of audio."""
        return self.rate * self.sample_width

    def to_pcm16(self, payload: bytes) -> bytes:
        """Line audio → little-endian PCM16 at :attr:`rate`.

        Raises:
            ValueError: ``payload`` is not a whole number of samples.
        """
        return self._decode(payload)

    def from_pcm16(self, pcm: bytes) -> bytes:
        """Little-endian PCM16 at :attr:`rate` → line audio.

        Raises:
            ValueError: ``pcm`` is not a whole number of 16-bit samples.
        """
        return self._encode(pcm)

    def silence(self, samples: int) -> bytes:
        """``samples`` samples of silence in this format."""
        return self._silence * samples

    def media_format(self) -> dict[str, Any]:
        """The ``start.mediaFormat`` object that declares this format."""
        return {"encoding": self.encoding, "sampleRate": self.rate, "channels": 1}

    def matches(self, media_format: dict[str, Any]) -> bool:
        """Whether a ``start.mediaFormat`` object declares this format."""
        return (
            media_format.get("encoding") == self.encoding
            and media_format.get("sampleRate") == self.rate
            and media_format.get("channels", 1) == 1
        )


MULAW_8K = LineFormat(
    name="mulaw-8k",
    encoding="audio/x-mulaw",
    rate=8000,
    sample_width=1,
    _silence=bytes([ULAW_SILENCE]),
    _decode=ulaw_to_pcm16,
    _encode=pcm16_to_ulaw,
)
"""Twilio's format: G.711 μ-law at 8 kHz (a telephone line)."""

PCM16_16K = LineFormat(
    name="pcm16-16k",
    encoding="audio/x-pcm16le",
    rate=16000,
    sample_width=2,
    _silence=b"\x00\x00",
    _decode=_pcm16_checked,
    _encode=_pcm16_checked,
)
"""Wideband: 16-bit little-endian PCM at 16 kHz, the pipeline rate (no codec, no resampler)."""

LINE_FORMATS = {f.name: f for f in (MULAW_8K, PCM16_16K)}
"""Every format by name."""
