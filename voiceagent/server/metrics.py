"""Server counters and their Prometheus text exposition.

The per-frame path only bumps plain ints (frames are counted on each ``TwilioCall``); all
formatting happens when ``/metrics`` is scraped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from voiceagent.server.admission import Load
from voiceagent.transports.twilio.protocol import ERROR_KINDS

_PREFIX = "voiceagent_"
PROTOCOL_ERROR_KINDS = ERROR_KINDS
"""Kinds reported by the Twilio transport; exported as zeros from the start."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class LiveCounts:
    """What the active calls hold right now (summed at scrape time)."""

    active_calls: int = 0
    frames_in: int = 0
    frames_out: int = 0


@dataclass
class ServerMetrics:
    """Process-wide counters; mutated from the event loop only."""

    started_at: float = field(default_factory=time.monotonic)
    calls_total: int = 0
    calls_failed_total: int = 0
    pipeline_errors_total: int = 0
    frames_in_finished: int = 0
    frames_out_finished: int = 0
    call_seconds_sum: float = 0.0
    calls_ended: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    protocol_errors: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(PROTOCOL_ERROR_KINDS, 0)
    )
    callbacks: dict[tuple[str, str], int] = field(default_factory=dict)
    call_statuses: dict[str, int] = field(default_factory=dict)
    answered_by: dict[str, int] = field(default_factory=dict)

    def callback(self, kind: str, outcome: str) -> None:
        """Count one Twilio callback (``status``, ``amd``) by outcome (``ok``, ``signature``…)."""
        key = (kind, outcome)
        self.callbacks[key] = self.callbacks.get(key, 0) + 1

    def call_status(self, status: str) -> None:
        """Count one accepted call progress event by Twilio's ``CallStatus``."""
        self.call_statuses[status] = self.call_statuses.get(status, 0) + 1

    def answered(self, answered_by: str) -> None:
        """Count one Twilio AMD result."""
        self.answered_by[answered_by] = self.answered_by.get(answered_by, 0) + 1

    def protocol_error(self, kind: str) -> None:
        """Count one bad message from Twilio (or a client) by kind."""
        self.protocol_errors[kind] = self.protocol_errors.get(kind, 0) + 1

    def reject(self, reason: str) -> None:
        """Count one refused request.

        Reasons: ``signature``, ``shutdown``, ``bad_host``, ``phone_link``, ``phone_origin``.
        """
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def call_finished(
        self, *, frames_in: int, frames_out: int, seconds: float, ended_by: str
    ) -> None:
        """Fold a finished call's counters into the totals."""
        self.frames_in_finished += frames_in
        self.frames_out_finished += frames_out
        self.call_seconds_sum += seconds
        self.calls_ended[ended_by] = self.calls_ended.get(ended_by, 0) + 1

    def uptime_s(self) -> float:
        """Seconds since the metrics (server) were created."""
        return time.monotonic() - self.started_at

    def render(self, live: LiveCounts, *, accepting: bool) -> str:
        """Prometheus text exposition format 0.0.4."""
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {_PREFIX}{name} {help_text}")
            out.append(f"# TYPE {_PREFIX}{name} {kind}")
            for labels, value in samples:
                shown = repr(value) if isinstance(value, float) else str(value)
                out.append(f"{_PREFIX}{name}{labels} {shown}")

        def labelled(label: str, counts: dict[str, int]) -> list[tuple[str, float]]:
            return [(f'{{{label}="{_escape(k)}"}}', v) for k, v in sorted(counts.items())]

        metric(
            "up",
            "gauge",
            "1 while the server accepts new calls, 0 while draining.",
            [("", 1 if accepting else 0)],
        )
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            [("", round(self.uptime_s(), 3))],
        )
        metric(
            "active_calls", "gauge", "Calls with an open media stream.", [("", live.active_calls)]
        )
        metric("calls_total", "counter", "Media stream calls accepted.", [("", self.calls_total)])
        metric(
            "call_failures_total",
            "counter",
            "Calls that ended on an unexpected error (pipeline build or crash).",
            [("", self.calls_failed_total)],
        )
        metric(
            "calls_ended_total",
            "counter",
            "Finished calls by what ended them.",
            labelled("reason", self.calls_ended),
        )
        metric(
            "call_duration_seconds_sum",
            "counter",
            "Total duration of finished calls.",
            [("", round(self.call_seconds_sum, 3))],
        )
        metric(
            "frames_in_total",
            "counter",
            "Media messages received from Twilio.",
            [("", self.frames_in_finished + live.frames_in)],
        )
        metric(
            "frames_out_total",
            "counter",
            "Media messages sent to Twilio.",
            [("", self.frames_out_finished + live.frames_out)],
        )
        metric(
            "protocol_errors_total",
            "counter",
            "Bad messages on media streams by kind.",
            labelled("kind", self.protocol_errors),
        )
        metric(
            "pipeline_errors_total",
            "counter",
            "Errors reported by call pipelines.",
            [("", self.pipeline_errors_total)],
        )
        metric(
            "requests_rejected_total",
            "counter",
            "Refused webhook/stream requests by reason.",
            labelled("reason", self.rejected),
        )
        metric(
            "twilio_callbacks_total",
            "counter",
            "Twilio status and AMD callbacks by outcome (ok, signature: 403, malformed: 400).",
            [
                (f'{{kind="{_escape(k)}",outcome="{_escape(o)}"}}', v)
                for (k, o), v in sorted(self.callbacks.items())
            ],
        )
        metric(
            "call_status_callbacks_total",
            "counter",
            "Accepted call progress events by Twilio CallStatus.",
            labelled("status", self.call_statuses),
        )
        metric(
            "amd_results_total",
            "counter",
            "Twilio answering machine detection results by AnsweredBy.",
            labelled("answered_by", self.answered_by),
        )
        return "\n".join(out) + "\n"


def render_load(load: Load, worst_lag_s: float) -> str:
    """Prometheus lines of the worker's load (limit, reservations, event-loop lag)."""
    lines = []
    for name, kind, help_text, value in (
        ("max_calls", "gauge", "Calls this worker admits at once.", load.max_calls),
        (
            "reserved_calls",
            "gauge",
            "Webhooks admitted whose stream has not come yet.",
            load.reserved,
        ),
        (
            "loop_lag_seconds",
            "gauge",
            "Event-loop lag, worst of the last seconds.",
            load.loop_lag_ms / 1000.0,
        ),
        ("loop_lag_max_seconds", "gauge", "Event-loop lag, worst since start.", worst_lag_s),
        (
            "refusing_calls",
            "gauge",
            "1 while new calls get the busy answer.",
            int(load.refusing is not None),
        ),
    ):
        lines += [f"# HELP {_PREFIX}{name} {help_text}", f"# TYPE {_PREFIX}{name} {kind}"]
        lines.append(
            f"{_PREFIX}{name} {value!r}" if isinstance(value, float) else f"{_PREFIX}{name} {value}"
        )
    return "\n".join(lines) + "\n"
