"""Deepgram live ``/v1/listen``: the handshake query and the server's JSON messages.

Message shapes follow deepgram-sdk 7's models (``ListenV1Results``, ``ListenV1UtteranceEnd``,
``ListenV1SpeechStarted``, ``ListenV1Metadata``); the tests validate every message sent
against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.fakes.deepgram_live.recognizers import Word
from bench.fakes.deepgram_live.segmenter import Job

MODEL_VERSION = "2026-01-01.0"
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class QueryError(ValueError):
    """A handshake parameter Deepgram would refuse (HTTP 400)."""


@dataclass(frozen=True)
class ListenOptions:
    """The parameters of one ``/v1/listen`` connection."""

    encoding: str = "linear16"
    sample_rate: int = 16000
    channels: int = 1
    model: str = "nova-3"
    interim_results: bool = False
    endpointing_s: float | None = 0.01
    utterance_end_s: float | None = None
    vad_events: bool = False
    punctuate: bool = False
    delay_s: float | None = None  # x_delay_ms: this connection's extra recognition latency


def _flag(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise QueryError(f"{name}={raw!r}: expected true or false")


def _milliseconds(query: Mapping[str, str], name: str, *, low: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError as e:
        raise QueryError(f"{name}={raw!r}: expected whole milliseconds") from e
    if not low <= value <= high:
        raise QueryError(f"{name}={value}: expected {low}..{high} ms")
    return value


def parse_listen_query(query: Mapping[str, str]) -> ListenOptions:
    """Read and check the handshake query.

    Raises:
        QueryError: a parameter is missing, malformed or not served here.
    """
    encoding = query.get("encoding")
    if encoding is None:
        raise QueryError("encoding is required here: linear16 or mulaw (raw audio only)")
    raw_rate = query.get("sample_rate")
    if raw_rate is None:
        raise QueryError("sample_rate is required with raw audio (encoding=...)")
    try:
        sample_rate = int(raw_rate)
        channels = int(query.get("channels", "1"))
    except ValueError as e:
        raise QueryError(f"sample_rate/channels must be whole numbers: {e}") from e
    if channels != 1:
        raise QueryError(f"channels={channels}: this server transcribes mono audio only")
    raw_endpointing = query.get("endpointing", "10").strip().lower()
    if raw_endpointing in _FALSE:
        endpointing_s = None
    elif raw_endpointing in _TRUE:
        endpointing_s = 0.01
    else:
        ms = _milliseconds(query, "endpointing", low=0, high=60000)
        endpointing_s = None if ms is None else ms / 1000.0
    utterance_end = _milliseconds(query, "utterance_end_ms", low=1000, high=5000)
    delay = _milliseconds(query, "x_delay_ms", low=0, high=60000)
    return ListenOptions(
        encoding=encoding,
        sample_rate=sample_rate,
        channels=channels,
        model=query.get("model", "nova-3"),
        interim_results=_flag(query, "interim_results"),
        endpointing_s=endpointing_s,
        utterance_end_s=None if utterance_end is None else utterance_end / 1000.0,
        vad_events=_flag(query, "vad_events"),
        punctuate=_flag(query, "punctuate") or _flag(query, "smart_format"),
        delay_s=None if delay is None else delay / 1000.0,
    )


def _t(seconds: float) -> float:
    return round(seconds, 3)


def results_message(
    job: Job, words: list[Word], *, punctuate: bool, request_id: str, model: str
) -> dict[str, Any]:
    """A ``Results`` message for ``job``'s window."""
    items = []
    for w in words:
        item: dict[str, Any] = {
            "word": w.plain,
            "start": _t(w.start),
            "end": _t(w.end),
            "confidence": round(w.confidence, 4),
        }
        if punctuate:
            item["punctuated_word"] = w.text
        items.append(item)
    transcript = " ".join(w.text if punctuate else w.plain for w in words)
    confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": _t(job.end - job.start),
        "start": _t(job.start),
        "is_final": job.final,
        "speech_final": job.speech_final,
        "from_finalize": job.from_finalize,
        "channel": {
            "alternatives": [
                {"transcript": transcript, "confidence": round(confidence, 4), "words": items}
            ]
        },
        "metadata": {
            "request_id": request_id,
            "model_info": {"name": model, "version": MODEL_VERSION, "arch": model},
            "model_uuid": f"local-{model}",
        },
    }


def utterance_end_message(last_word_end: float) -> dict[str, Any]:
    """``UtteranceEnd``: the gap after the last word reached ``utterance_end_ms``."""
    return {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": _t(last_word_end)}


def speech_started_message(timestamp: float) -> dict[str, Any]:
    """``SpeechStarted`` (``vad_events``), stamped at the start of the voiced audio."""
    return {"type": "SpeechStarted", "channel": [0], "timestamp": _t(timestamp)}


def metadata_message(request_id: str, sha256: str, duration_s: float) -> dict[str, Any]:
    """The summary sent after ``CloseStream``, before the server closes the socket."""
    return {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": sha256,
        "created": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "duration": _t(duration_s),
        "channels": 1,
    }
