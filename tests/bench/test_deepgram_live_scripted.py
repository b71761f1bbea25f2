"""The scripted instrument: told the script, on the recognizing server's protocol and timing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fakes.deepgram_live import (
    DeepgramLiveServer,
    ScriptedRecognizer,
    ScriptLine,
    load_script,
)
from bench.fakes.deepgram_live.speech import SileroModel, voiced_seconds
from bench.fakes.phone_speech import silence
from tests.bench.live_stt import (
    PIPECAT_QUERY,
    check_protocol_invariants,
    listen,
    pace,
    prompt,
    received,
    results,
    to_16k,
    transcript,
    words_of,
)

ROOT = Path(__file__).resolve().parents[2]
FAST = 32000 * 8  # stream 8× faster than real time: the scripted timeline is the audio's


@pytest.fixture(scope="module")
def vad() -> SileroModel:
    return SileroModel()


def lines_of(vad: SileroModel, *names: str) -> tuple[bytes, list[ScriptLine]]:
    """A call: the prompts one after another with 1.2 s of quiet; its script, measured."""
    audio, script = silence(0.4), []
    for name in names:
        speech, text = prompt(name)
        audio += speech + silence(1.2)
        script.append(ScriptLine(text, voiced_seconds(speech, vad)))
    return audio, script


async def test_every_word_of_the_script_arrives_on_the_recognizing_timeline(vad):
    audio, script = lines_of(vad, "privacy-unident", "vm-nobodyavail")
    recognizer = ScriptedRecognizer(decode_s=0.0)
    recognizer.expect(script)
    async with DeepgramLiveServer(recognizer) as server:
        assert "NOT recognition" in server.instrument
        async with listen(server) as ws:
            await pace(ws.send_bytes, to_16k(audio), 640, FAST)
            await ws.send_str(json.dumps({"type": "CloseStream"}))
            await received(ws)
    record = server.connections[0]
    check_protocol_invariants(record)
    finals = [transcript(b) for b in results(record, final=True) if transcript(b)]
    assert " ".join(finals) == " ".join(line.text for line in script)
    speech_finals = [b for b in results(record, final=True) if b["speech_final"]]
    assert [transcript(b) for b in speech_finals] == [line.text for line in script]
    interims = [len(words_of(b)) for b in results(record, final=False)]
    assert len(interims) >= 5 and max(interims) > min(interims)  # revealed as it is heard
    assert len(record.of("UtteranceEnd")) == 2
    (session,) = recognizer.sessions
    assert session.lines_started == 2 and session.dropped_words == 0


async def test_voice_past_the_end_of_the_script_gets_no_words(vad):
    audio, script = lines_of(vad, "hello", "auth-thankyou")
    server = DeepgramLiveServer(ScriptedRecognizer(script[:1], decode_s=0.0))
    async with server, listen(server) as ws:
        await pace(ws.send_bytes, to_16k(audio), 640, FAST)
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        await received(ws)
    record = server.connections[0]
    assert [transcript(b) for b in results(record, final=True) if transcript(b)] == ["Hello."]
    assert server.recognizer.sessions[0].unscripted_s > 0.3


def test_a_script_file_gives_lines_with_optional_voiced_seconds(tmp_path):
    path = tmp_path / "call.txt"
    path.write_text("# a caller\n1.25\tHi, I'd like to book a cleaning.\n\nYes, please.\n")
    assert load_script(path) == [
        ScriptLine("Hi, I'd like to book a cleaning.", 1.25),
        ScriptLine("Yes, please.", None),
    ]
    path.write_text("soon\tHi.\n")
    with pytest.raises(ValueError, match="call.txt:1"):
        load_script(path)


async def test_the_standalone_server_serves_a_script_in_its_own_process(vad, tmp_path):
    speech, text = prompt("hello")
    script = tmp_path / "call.txt"
    script.write_text(f"{voiced_seconds(speech, vad):.3f}\t{text}\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fakes.deepgram_live", "--port", "0", "--scripted",
        str(script), "--delay-ms", "200", "--api-key", "k-test",
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        instrument = (await process.stdout.readline()).decode()
        url = first.split()[-1].removesuffix("/v1/listen")
        assert url.startswith("ws://127.0.0.1:") and "NOT recognition" in instrument
        server = type("Remote", (), {"url": url, "api_key": "k-test"})
        async with listen(server, PIPECAT_QUERY) as ws:
            await pace(ws.send_bytes, to_16k(silence(0.3) + speech + silence(0.8)), 640, FAST)
            await ws.send_str(json.dumps({"type": "CloseStream"}))
            messages = await received(ws)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
    finals = [transcript(m) for m in messages if m["type"] == "Results" and m["is_final"]]
    assert "Hello." in finals and messages[-1]["type"] == "Metadata"
    assert code == 0


def feed(session, pattern: str, frame_s: float = 0.1) -> None:
    """``pattern``: one character per frame, ``#`` voiced and ``.`` quiet."""
    from bench.fakes.deepgram_live.segmenter import SpeechFrame

    for i, ch in enumerate(pattern):
        session.observe(SpeechFrame(i * frame_s, (i + 1) * frame_s, ch == "#"))


async def words_in(session, start: float, end: float) -> list[str]:
    from bench.fakes.deepgram_live.segmenter import Job

    return [w.text for w in await session.recognize(Job(start, end, final=True, reason="t"), b"")]


async def test_words_are_revealed_in_proportion_to_voiced_time_heard():
    from bench.fakes.deepgram_live.scripted import ScriptedSession

    session = ScriptedSession([ScriptLine("aa bb cc dd", voiced_s=0.8)])
    feed(session, "..####..####....")  # 0.8 s voiced, with a pause in the middle
    heard = [(w.text, round(w.end, 2)) for w in session._words]
    assert heard == [("aa", 0.4), ("bb", 0.6), ("cc", 1.0), ("dd", 1.2)]
    assert await words_in(session, 0.0, 0.9) == ["aa", "bb"]  # windows split the words
    assert await words_in(session, 0.9, 1.6) == ["cc", "dd"]


async def test_a_line_heard_shorter_than_scripted_ends_at_its_first_pause():
    from bench.fakes.deepgram_live.scripted import ScriptedSession

    session = ScriptedSession([ScriptLine("aa bb cc dd", voiced_s=1.0), ScriptLine("ee")])
    feed(session, "#########.....##")  # 0.9 s of the 1.0 s expected, then quiet
    assert [w.text for w in session._words] == ["aa", "bb", "cc", "dd", "ee"]
    assert session._words[3].end == pytest.approx(0.9)  # the rest revealed at the voice end
    assert session.lines_started == 2


async def test_without_punctuate_words_come_plain_and_decodes_take_their_time(vad):
    audio, script = lines_of(vad, "privacy-unident")
    server = DeepgramLiveServer(ScriptedRecognizer(script, decode_s=0.2))
    async with server, listen(server, "encoding=linear16&sample_rate=16000&endpointing=300") as ws:
        await pace(ws.send_bytes, to_16k(audio), 640, 32000)  # real time: decodes take 0.2 s
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        await received(ws)
    record = server.connections[0]
    (final,) = [b for b in results(record, final=True) if transcript(b)]
    assert (
        transcript(final) == "the party you are trying to reach does not accept unidentified calls"
    )
    assert all("punctuated_word" not in w for w in words_of(final))
    sent = next(m for m in record.of("Results") if transcript(m.body))
    assert sent.audio_s - (sent.body["start"] + sent.body["duration"]) >= 0.18
