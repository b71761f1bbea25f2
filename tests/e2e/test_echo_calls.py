"""End to end over loopback without model weights: the real server, transport and caller emulator.

The agent is a test-only echo pipeline (pipecat's Silero VAD, then a tone spoken as a TTS turn
after each caller utterance), so every byte crosses the real ``run_server`` → ``MediaCall`` →
TwilioSerializer … TwilioOutput → WebSocket → ``CallerEmulator`` path, marks included.
"""

from __future__ import annotations

import asyncio
import re
import sys
import wave
from pathlib import Path

from voiceagent.emulator.audio import ulaw_decode, write_wav
from voiceagent.emulator.caller import CallerEmulator, CallReport
from voiceagent.emulator.script import CallerLine

from .e2e_harness import (
    SPEECH_RMS,
    CallEvents,
    EchoFactory,
    MisbehavingLeg,
    band_power,
    caller_line_pcm8k,
    loopback_settings,
    rms,
    serving,
    window,
)

CALL_TIMEOUT_S = 60.0
REPLY_S = 0.8  # the echo agent's reply: two 0.4 s tone segments


def _script(first: bytes, second: bytes) -> list[CallerLine]:
    return [
        CallerLine(first, pause_after_s=1.0, text="I would like to check on my order"),
        CallerLine(second, pause_after_s=1.0, text="thank you very much"),
    ]


def _check_own_replies(report: CallReport, events: CallEvents, own_hz: float, other_hz: float):
    """The caller heard one tone reply per line, all in its own agent's pitch."""
    assert len(report.turns) == 2, report.turns
    for turn in report.turns:
        assert turn.latency_ms is not None, f"no reply to {turn.caller_text!r}"
        assert turn.latency_ms < 3000, f"echo reply took {turn.latency_ms:.0f} ms"
        heard = window(report.heard_pcm8k, turn.first_agent_audio_s, turn.first_agent_audio_s + 0.7)
        assert rms(heard) > SPEECH_RMS
    assert report.clears == 0
    assert report.malformed_messages == 0
    assert not report.closed_by_server
    assert report.marks_echoed >= 2 * len(report.turns)  # one mark per spoken segment at least
    assert report.marks_echoed == report.marks_received
    own = band_power(report.heard_pcm8k, own_hz)
    other = band_power(report.heard_pcm8k, other_hz)
    assert own > 100 * other, f"heard {other / own:.3f} of the other call's tone"
    heard_s = sum(turn.agent_audio_s for turn in report.turns)
    assert (
        len(events.utterances()) * REPLY_S - 0.1
        <= heard_s
        <= len(events.utterances()) * (REPLY_S + 0.1)
    )


async def test_two_calls_stay_isolated_while_a_third_caller_sends_junk(tmp_path: Path) -> None:
    """Caller A (440 Hz agent) and caller B (880 Hz agent) talk at the same time as a broken
    Twilio leg C that sends six kinds of junk before speaking: A and B each hear only their own
    agent, one reply per line; C's junk is dropped and counted in /metrics, and C's call goes on
    (its own agent answers it at 660 Hz)."""
    first = caller_line_pcm8k("Hello, I would like to check on my order please.", tmp_path)
    second = caller_line_pcm8k("Thank you very much.", tmp_path)
    factory = EchoFactory()
    events_a, events_b = CallEvents(), CallEvents()
    async with serving(loopback_settings(), factory) as server:
        caller_a = CallerEmulator(server.media_url, custom_parameters={"tone_hz": "440"})
        caller_b = CallerEmulator(server.media_url, custom_parameters={"tone_hz": "880"})
        junk = MisbehavingLeg(server.media_url, tone_hz="660")
        run = {"lead_in_s": 0.3, "tail_s": 1.5, "max_wait_reply_s": 8.0}
        async with asyncio.timeout(CALL_TIMEOUT_S):
            report_a, report_b, _ = await asyncio.gather(
                caller_a.run(_script(first, second), on_event=events_a, **run),
                caller_b.run(_script(second, first), on_event=events_b, **run),
                junk.run(first),
            )
            metrics = await server.metrics()
            while metrics["voiceagent_active_calls"] > 0:  # calls finish tearing down
                await asyncio.sleep(0.05)
                metrics = await server.metrics()

    print(
        f"\nA latencies {[round(t.latency_ms or -1) for t in report_a.turns]} ms, "
        f"B {[round(t.latency_ms or -1) for t in report_b.turns]} ms, "
        f"marks A {report_a.marks_echoed} B {report_b.marks_echoed}, junk leg {junk.junk_sent}"
    )
    _check_own_replies(report_a, events_a, 440.0, 880.0)
    _check_own_replies(report_b, events_b, 880.0, 440.0)

    # Each server-side agent served exactly the call it was built for.
    agents = {agent.stream_sid: agent for agent in factory.agents}
    assert set(agents) == {report_a.stream_sid, report_b.stream_sid, junk.stream_sid}
    assert agents[report_a.stream_sid].replies == len(events_a.utterances())
    assert agents[report_b.stream_sid].replies == len(events_b.utterances())

    # The junk leg: nothing for another stream, its own agent answered, no 1008 close.
    assert junk.foreign == 0
    assert junk.close_code != 1008
    junk_heard = ulaw_decode(bytes(junk.heard_ulaw))
    assert len(junk_heard) >= 2 * 8000 * 0.5  # ≥ 0.5 s of reply
    assert band_power(junk_heard, 660.0) > 100 * (
        band_power(junk_heard, 440.0) + band_power(junk_heard, 880.0)
    )
    assert junk.marks >= 2

    assert metrics["voiceagent_calls_total"] == 3
    for kind, sent in junk.junk_sent.items():
        assert metrics[f'voiceagent_protocol_errors_total{{kind="{kind}"}}'] == sent, kind
    assert metrics['voiceagent_calls_ended_total{reason="stop"}'] == 3


async def test_call_cli_writes_what_the_caller_heard(tmp_path: Path) -> None:
    """``voiceagent call --audio line.wav --out heard.wav`` against a server running the echo
    agent: exit 0, a latency line for the turn, and the heard WAV holds the agent's 440 Hz tone."""
    line = tmp_path / "line.wav"
    write_wav(line, caller_line_pcm8k("Can you hear me now?", tmp_path), 8000)
    heard = tmp_path / "heard.wav"
    script = Path(sys.executable).with_name("voiceagent")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "voiceagent.cli"]
    async with serving(loopback_settings(), EchoFactory()) as server:
        process = await asyncio.create_subprocess_exec(
            *command,
            "call",
            "--url",
            server.media_url,
            "--audio",
            str(line),
            "--out",
            str(heard),
            "--pause",
            "1.0",
            "--tail",
            "1.0",
            "--max-wait",
            "8",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                out, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    text = out.decode()
    print(text)
    assert process.returncode == 0, text
    # "   1       2.31s         2.93s      620 ms        0.80s  line.wav"
    latency = re.search(
        r"^\s+1\s+[\d.]+s\s+[\d.]+s\s+(\d+) ms\s+([\d.]+)s\s+line\.wav$", text, re.M
    )
    assert latency is not None, text
    assert 0 < int(latency.group(1)) < 3000
    assert abs(float(latency.group(2)) - REPLY_S) < 0.1
    assert re.search(r"marks (\d+) received / \1 echoed, clears 0", text), text
    with wave.open(str(heard), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        pcm = wav.readframes(wav.getnframes())
    total = band_power(pcm, 2000.0, width_hz=2001.0)
    assert total > 0
    assert band_power(pcm, 440.0) > 0.8 * total  # the echo tone, not noise or silence
