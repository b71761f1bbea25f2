"""The server's Prometheus series (``prometheus_client``) on one app's ``CollectorRegistry``.

Events (a call accepted, a request refused, a callback) bump a counter when they happen. What
calls hold right now is read at each scrape by :meth:`ServerMetrics.refresh`: the per-frame path
only bumps plain ints on each ``TwilioCall``, whose growth is folded into the frame counters then
(and once more when the call ends), so a scrape costs one pass over the live calls.

With ``serve --workers N`` every worker process writes its series into one directory
(``PROMETHEUS_MULTIPROC_DIR``, prometheus_client's multiprocess mode, set by the worker pool) and
each ``/metrics`` answers for all workers: counters and histograms summed, gauges per their
``multiprocess_mode`` (calls and limits summed, event-loop lag the worst, uptime the youngest
worker's). There, each worker also refreshes its gauges and frame counters every
``MULTIPROCESS_REFRESH_S``, since a scrape reaches one worker only.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from voiceagent.server.admission import Load
from voiceagent.server.turn_metrics import TurnMetrics
from voiceagent.transports.twilio.protocol import ERROR_KINDS

PROTOCOL_ERROR_KINDS = ERROR_KINDS
"""Kinds reported by the Twilio transport; exported as zeros from the start."""
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS_REFRESH_S = 1.0
"""In multiprocess mode, how often each worker writes its live figures for the others' scrapes."""
CALL_DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_HELP: dict[str, str] = {
    "up": "1 while the server accepts new calls, 0 while draining.",
    "uptime_seconds": "Seconds since the server (the youngest worker) started.",
    "active_calls": "Calls with an open media stream.",
    "calls": "Media stream calls accepted.",
    "call_failures": "Calls that ended on an unexpected error (pipeline build or crash).",
    "calls_ended": "Finished calls by what ended them.",
    "call_duration_seconds": "Duration of finished calls.",
    "frames_in": "Media messages received from Twilio.",
    "frames_out": "Media messages sent to Twilio.",
    "protocol_errors": "Bad messages on media streams by kind.",
    "pipeline_errors": "Errors reported by call pipelines.",
    "requests_rejected": "Refused webhook/stream requests by reason.",
    "twilio_callbacks": (
        "Twilio status and AMD callbacks by outcome (ok, signature: 403, malformed: 400)."
    ),
    "call_status_callbacks": "Accepted call progress events by Twilio CallStatus.",
    "amd_results": "Twilio answering machine detection results by AnsweredBy.",
    "max_calls": "Calls admitted at once (summed over workers).",
    "reserved_calls": "Webhooks admitted whose stream has not come yet.",
    "loop_lag_seconds": "Event-loop lag, worst of the last seconds (worst worker).",
    "loop_lag_max_seconds": "Event-loop lag, worst since start (worst worker).",
    "refusing_calls": "Workers giving new calls the busy answer now (1 or 0 for one worker).",
    "recording_write_errors": "Failed writes of call recordings (rows, events, audio).",
}
"""The help text of each server series (``voiceagent_<name>``)."""


def multiprocess_dir() -> str | None:
    """The shared directory of prometheus_client's multiprocess mode, when it is on."""
    return os.environ.get(MULTIPROCESS_ENV) or None


class CountedCall(Protocol):
    """What the metrics read from one call (a ``MediaCall``)."""

    @property
    def frames_in(self) -> int:
        """Media messages received so far."""

    @property
    def frames_out(self) -> int:
        """Media messages sent so far."""


class ServerMetrics:
    """The server's counters and gauges; mutated from the event loop only."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create every series on ``registry`` (a new one by default: one per app)."""
        self.registry = registry if registry is not None else CollectorRegistry()
        self.started_at = time.monotonic()
        self.calls_total = 0
        """Calls accepted by this process (also ``/healthz``'s ``calls_total``)."""
        self._frames_seen: weakref.WeakKeyDictionary[CountedCall, tuple[int, int]] = (
            weakref.WeakKeyDictionary()
        )
        self._write_errors_seen = 0
        r = self.registry

        def gauge(name: str, mode: str) -> Gauge:  # ``mode``: how workers' values combine
            return Gauge(f"voiceagent_{name}", _HELP[name], registry=r, multiprocess_mode=mode)

        def counter(name: str, *labels: str) -> Counter:
            return Counter(f"voiceagent_{name}", _HELP[name], labels, registry=r)

        self.up = gauge("up", "livemin")
        self.uptime = gauge("uptime_seconds", "livemin")
        self.active_calls = gauge("active_calls", "livesum")
        self.calls = counter("calls")
        self.call_failures = counter("call_failures")
        self.calls_ended = counter("calls_ended", "reason")
        self.call_duration = Histogram(
            "voiceagent_call_duration_seconds",
            _HELP["call_duration_seconds"],
            buckets=CALL_DURATION_BUCKETS,
            registry=r,
        )
        self.frames_in = counter("frames_in")
        self.frames_out = counter("frames_out")
        self.protocol_errors = counter("protocol_errors", "kind")
        for kind in PROTOCOL_ERROR_KINDS:
            self.protocol_errors.labels(kind)
        self.pipeline_errors = counter("pipeline_errors")
        self.rejected = counter("requests_rejected", "reason")
        self.callbacks = counter("twilio_callbacks", "kind", "outcome")
        self.call_statuses = counter("call_status_callbacks", "status")
        self.answered_by = counter("amd_results", "answered_by")
        self.max_calls = gauge("max_calls", "livesum")
        self.reserved_calls = gauge("reserved_calls", "livesum")
        self.loop_lag = gauge("loop_lag_seconds", "livemax")
        self.loop_lag_max = gauge("loop_lag_max_seconds", "livemax")
        self.refusing_calls = gauge("refusing_calls", "livesum")
        self.recording_write_errors = counter("recording_write_errors")
        self.turns = TurnMetrics(r)
        """Turn-taking series, read from every call's frames (``turns.tap()`` per call)."""

    # --- events ----------------------------------------------------------------------------

    def call_started(self) -> None:
        """One more media stream call accepted."""
        self.calls_total += 1
        self.calls.inc()

    def call_failed(self) -> None:
        """A call ended on an unexpected error."""
        self.call_failures.inc()

    def pipeline_error(self) -> None:
        """A call's pipeline reported an error."""
        self.pipeline_errors.inc()

    def callback(self, kind: str, outcome: str) -> None:
        """Count one Twilio callback (``status``, ``amd``) by outcome (``ok``, ``signature``…)."""
        self.callbacks.labels(kind, outcome).inc()

    def call_status(self, status: str) -> None:
        """Count one accepted call progress event by Twilio's ``CallStatus``."""
        self.call_statuses.labels(status).inc()

    def answered(self, answered_by: str) -> None:
        """Count one Twilio AMD result."""
        self.answered_by.labels(answered_by).inc()

    def protocol_error(self, kind: str) -> None:
        """Count one bad message from Twilio (or a client) by kind."""
        self.protocol_errors.labels(kind).inc()

    def reject(self, reason: str) -> None:
        """Count one refused request.

        Reasons: ``signature``, ``shutdown``, ``bad_host``, ``phone_link``, ``phone_origin``,
        ``busy_full``, ``busy_slow``.
        """
        self.rejected.labels(reason).inc()

    def call_finished(self, call: CountedCall, *, seconds: float, ended_by: str) -> None:
        """Fold a finished call's frames (those not yet counted), duration and end reason in."""
        self._fold_frames(call)
        self._frames_seen.pop(call, None)
        self.call_duration.observe(seconds)
        self.calls_ended.labels(ended_by).inc()

    # --- the live figures ------------------------------------------------------------------

    def uptime_s(self) -> float:
        """Seconds since the metrics (server) were created."""
        return time.monotonic() - self.started_at

    def refresh(
        self,
        calls: Iterable[CountedCall],
        *,
        accepting: bool,
        load: Load,
        worst_lag_s: float,
        recording_write_errors: int = 0,
    ) -> None:
        """Bring what is read, not counted, up to date: before a scrape (and periodically)."""
        live = 0
        for call in calls:
            live += 1
            self._fold_frames(call)
        self.active_calls.set(live)
        self.up.set(1 if accepting else 0)
        self.uptime.set(round(self.uptime_s(), 3))
        self.max_calls.set(load.max_calls)
        self.reserved_calls.set(load.reserved)
        self.loop_lag.set(load.loop_lag_ms / 1000.0)
        self.loop_lag_max.set(worst_lag_s)
        self.refusing_calls.set(int(load.refusing is not None))
        grown = recording_write_errors - self._write_errors_seen
        if grown > 0:
            self.recording_write_errors.inc(grown)
            self._write_errors_seen = recording_write_errors

    def _fold_frames(self, call: CountedCall) -> None:
        seen_in, seen_out = self._frames_seen.get(call, (0, 0))
        now_in, now_out = call.frames_in, call.frames_out
        if now_in > seen_in:
            self.frames_in.inc(now_in - seen_in)
        if now_out > seen_out:
            self.frames_out.inc(now_out - seen_out)
        self._frames_seen[call] = (max(now_in, seen_in), max(now_out, seen_out))

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape's body and content type (text 0.0.4, or OpenMetrics when ``accept``-ed).

        In multiprocess mode the series of every worker are read from the shared directory.
        """
        registry = self.registry
        shared = multiprocess_dir()
        if shared is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=shared)
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type
