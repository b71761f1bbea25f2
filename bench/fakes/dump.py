"""Write a bench run's timelines to JSON (every call's events on the caller's stream clock)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from bench.fakes.breakdown import CallRecord, Timeline


def dump_records(records: list[CallRecord], path: Path) -> None:
    """Write each call's events on the stream clock (for digging into a figure)."""
    out = []
    for rec in records:
        tl = Timeline(rec)
        out.append(
            {
                "call": rec.name,
                "lines": [
                    {
                        "text": ln.text,
                        "kind": ln.kind,
                        "start": tl.starts.get(i),
                        "end": tl.ends.get(i),
                        "audio_s": ln.duration_s,
                    }
                    for i, ln in enumerate(rec.lines)
                ],
                "agent_replies": tl.replies,
                "clears": [
                    {"t": t, "kind": k} for t, k in zip(tl.clears, tl.clear_kinds, strict=True)
                ],
                "caller_events": [
                    {"kind": k, **{a: b for a, b in d.items() if a != "marks"}}
                    for _, k, d in rec.events
                ],
                "server": [
                    {"t": round(t, 4), "stage": s, "event": e, "detail": repr(d)}
                    for t, s, e, d in tl.probes
                ],
                "llm_requests": [
                    {
                        **asdict(r),
                        "received_at": r.received_at - tl.t0,
                        "first_token_at": r.first_token_at and r.first_token_at - tl.t0,
                        "last_token_at": r.last_token_at and r.last_token_at - tl.t0,
                    }
                    for r in rec.llm_requests
                ],
                "tts_requests": [
                    {
                        "text": q.text,
                        "requested_at": q.requested_at - tl.t0,
                        "first_audio_at": q.first_audio_at and q.first_audio_at - tl.t0,
                    }
                    for q in (rec.tts.stats.requests if rec.tts else [])
                ],
                "stt_messages": [
                    {"t": round(m.at - tl.t0, 4), "audio_s": m.audio_s, **m.body}
                    for conn in rec.stt_connections
                    for m in conn.sent
                ],
            }
        )
    path.write_text(json.dumps(out, indent=1, default=str))
