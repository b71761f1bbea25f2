"""A call as the storage tests place it: one caller, one line, one recording."""

from __future__ import annotations

from voiceagent.storage import CallInfo, CallStore

T0 = 1_780_000_000.0


def a_call(store: CallStore, call_sid: str = "CA01", started_at: float = T0) -> int:
    """Start call ``call_sid`` (from +15550100 to +15550199) in ``store``; its row id."""
    info = CallInfo(
        call_sid=call_sid,
        stream_sid="MZ" + call_sid[2:],
        started_at=started_at,
        account_sid="AC01",
        from_number="+15550100",
        to_number="+15550199",
        parameters={"From": "+15550100", "To": "+15550199"},
        audio_path="/calls/a.wav",
    )
    return store.start_call(info)
