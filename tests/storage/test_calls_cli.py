"""``voiceagent calls`` lists stored calls; ``voiceagent calls show SID`` prints one transcript."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voiceagent.cli import main
from voiceagent.settings import StorageSettings
from voiceagent.storage import CallEnd, CallEvent, CallInfo, open_store

T0 = 1_780_000_000.0


@pytest.fixture
def stored_call(tmp_path: Path) -> Path:
    """One finished call: greeting, a question, an answer the caller cut (the agent paused at
    their first sound, then gave way), a tool call, and the TTS failing over to the local voice."""
    store = open_store(StorageSettings(dir=tmp_path))
    call_id = store.start_call(
        CallInfo(
            call_sid="CA5e1f",
            stream_sid="MZ5e1f",
            started_at=T0,
            from_number="+15550100",
            to_number="+15550199",
            audio_path=str(tmp_path / "recordings" / "CA5e1f.wav"),
        )
    )
    for event in (
        CallEvent(
            "agent",
            2.4,
            turn_id=1,
            text="Hello, how can I help?",
            full_text="Hello, how can I help?",
            interrupted=False,
            data={"started_s": 0.3},
        ),
        CallEvent(
            "caller",
            4.1,
            turn_id=1,
            text="Do you have anything on Tuesday?",
            data={"reason": "stable", "speculative_hit": True},
        ),
        CallEvent("speech_start", 2.2),
        CallEvent("speech_end", 3.2),
        CallEvent("partial", 3.6, text="anything on"),
        CallEvent("final", 3.9, text="Do you have anything on Tuesday?"),
        CallEvent("metrics", 4.6, turn_id=1, data={"silence_s": 0.45, "regret": False}),
        CallEvent("llm_first_token", 4.35, text="Sure"),
        CallEvent("chunk", 4.6, text="Sure, we have"),
        CallEvent("tts_audio", 4.9),
        CallEvent("agent_audio", 5.05, turn_id=2, data={"play_at_s": 5.1}),
        CallEvent("decision", 5.5, data={"kind": "barge_in", "reason": "words"}),
        CallEvent("clear", 5.52),
        CallEvent("tool", 4.8, text="find_slots", data={"stage": "call", "arguments": {"day": 2}}),
        CallEvent(
            "provider",
            4.9,
            text="tts",
            data={"failed": "deepgram", "serving": "piper", "reason": "HTTP 402, out of credit"},
        ),
        CallEvent("pause_clear", 5.3, data={"held_s": 0.2}),
        CallEvent(
            "agent",
            6.0,
            turn_id=2,
            text="Sure, we have",
            interrupted=True,
            full_text="Sure, we have openings at two and at four.",
            data={"started_s": 5.1, "unheard_text": "openings at two and at four."},
        ),
    ):
        store.add_event(call_id, event)
    store.end_call(call_id, CallEnd(T0 + 12.5, "stop", audio_seconds=12.5))
    store.close()
    return tmp_path


def test_calls_lists_the_stored_calls(stored_call: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("VOICEAGENT_STORAGE__DIR", str(stored_call))
    assert main(["calls"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "#",
        "SID",
        "DIR",
        "FROM",
        "TO",
        "STARTED",
        "DURATION",
        "TURNS",
        "STATUS",
        "END",
    ]
    assert row.split()[:5] == ["1", "CA5e1f", "in", "+15550100", "+15550199"]
    assert row.split()[-5:] == ["12.5", "s", "3", "-", "stop"]


def test_calls_show_prints_the_timeline_with_heard_and_full_text(stored_call, capsys):
    assert main(["calls", "--dir", str(stored_call), "show", "CA5e1f"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "from +15550100 to +15550199" in lines[1]
    assert "12.5 s, ended by stop" in lines[2]
    assert f"audio {stored_call / 'recordings' / 'CA5e1f.wav'}" in lines[3]
    timeline = [line.split() for line in lines if line.lstrip()[:1].isdigit()]
    assert [words[:2] for words in timeline] == [
        ["0.30s", "agent"],
        ["2.20s", "voice"],
        ["3.20s", "voice"],
        ["3.60s", "stt"],
        ["3.90s", "stt"],
        ["4.10s", "turns"],
        ["4.35s", "llm"],
        ["4.60s", "tts"],
        ["4.80s", "tool"],
        ["4.90s", "tts"],
        ["4.90s", "stack"],
        ["5.05s", "output"],
        ["5.10s", "agent"],
        ["5.30s", "output"],
        ["5.50s", "turns"],
        ["5.52s", "output"],
    ]
    assert "commit #1 'Do you have anything on Tuesday?' (stable, speculative hit, after " in out
    assert "450 ms of silence)" in out
    assert "partial 'anything on'" in out
    assert "turn 2 played 5.10s–6.00s, CUT: heard 'Sure, we have' of 'Sure, we have openings" in out
    assert "soft clear: the agent paused at the caller's sound (0.20 s held)" in out
    assert "BARGE-IN (words)" in out and "clear sent" in out
    assert "tts: deepgram failed → piper (HTTP 402, out of credit)" in out
    assert 'find_slots call: {"day": 2}' in out
    # the latency of the turn, split by stage (the caller's side is unknown: from the VAD)
    assert "#1 'Do you have anything on Tuesday?' 1900 ms (from the VAD's end of speech)" in out
    assert "= commit wait 900 + LLM first token 250" in out and "(+ network: unknown)" in out


def test_calls_show_last_is_the_newest_call_and_json_has_the_timeline(stored_call, capsys):
    store = open_store(StorageSettings(dir=stored_call))
    store.start_call(CallInfo(call_sid="CAnewer", stream_sid="MZ2", started_at=T0 + 60))
    store.close()
    assert main(["calls", "--dir", str(stored_call), "show", "last"]) == 0
    assert capsys.readouterr().out.startswith("call CAnewer (#2)")
    assert main(["calls", "--dir", str(stored_call), "show", "last~1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["call"]["call_sid"] == "CA5e1f" and data["call"]["duration_s"] == 12.5
    kinds = [e["kind"] for e in data["timeline"]["events"]]
    assert kinds[:3] == ["speech_start", "agent", "speech_end"]  # an agent turn at its end
    (latency,) = data["timeline"]["latencies"]
    assert latency["stages_ms"]["commit_wait"] == pytest.approx(900)
    assert main(["calls", "--dir", str(stored_call), "show", "last~5"]) == 1


def test_an_unknown_call_or_no_database_is_said_plainly(tmp_path: Path, stored_call, capsys):
    assert main(["calls", "--dir", str(stored_call), "show", "CA0000"]) == 1
    assert "no stored call 'CA0000'" in capsys.readouterr().out
    assert main(["calls", "--dir", str(tmp_path / "empty")]) == 0
    assert "no calls stored yet" in capsys.readouterr().out
    assert not (tmp_path / "empty").exists()


def test_a_broken_database_is_an_error_not_a_traceback(tmp_path: Path, capsys):
    (tmp_path / "calls.db").write_bytes(b"this is not a database" * 100)
    assert main(["calls", "--dir", str(tmp_path)]) == 2
    assert "cannot read the calls" in capsys.readouterr().err
