"""``voiceagent call``: arguments, script building, and one short call from a WAV file."""

import argparse
import base64
import hashlib
import hmac
import wave

import pytest
from emulator_fakes import FakeAgentServer, tone_pcm8k

from voiceagent.emulator.audio import write_wav
from voiceagent.emulator.cli import (
    DEFAULT_URL,
    add_call_parser,
    build_script,
    run_call_command,
    twilio_signature,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_call_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["call", *argv])


def test_defaults_point_at_a_local_server():
    args = parse()
    assert args.url == DEFAULT_URL == "ws://127.0.0.1:8080/media"
    assert args.script == [] and args.pause == 1.5 and args.tail == 4.0 and args.out is None


def test_audio_and_dtmf_keep_command_line_order(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    for path in (a, b):
        write_wav(path, tone_pcm8k(0.1), 16000)
    args = parse(
        "--dtmf",
        "0",
        "--audio",
        str(a),
        "--dtmf",
        "12#",
        "--audio",
        str(b),
        "--param",
        "From=+15550100",
        "--pause",
        "0.7",
    )
    assert [kind for kind, _ in args.script] == ["digits", "wav", "digits", "wav"]
    lines = build_script(args.script, args.pause)
    assert [(line.text, line.dtmf) for line in lines] == [
        ("[0]", "0"),
        ("a.wav", "12#"),
        ("b.wav", ""),
    ]
    assert all(line.pause_after_s == 0.7 for line in lines)
    assert len(lines[1].pcm8k) == 2 * 400  # 0.1 s at 16 kHz → 8 kHz
    assert args.param == [("From", "+15550100")]


def test_bad_param_is_an_argument_error():
    with pytest.raises(SystemExit):
        parse("--param", "no-equals-sign")


def test_upgrade_signature_is_hmac_sha1_of_the_url():
    url = "wss://example.com/media"
    expected = base64.b64encode(hmac.new(b"12345", url.encode(), hashlib.sha1).digest()).decode()
    assert twilio_signature(url, "12345") == expected


async def test_call_command_speaks_the_wav_prints_latency_and_writes_heard_audio(tmp_path, capsys):
    caller_wav, heard_wav = tmp_path / "hello.wav", tmp_path / "out" / "heard.wav"
    write_wav(caller_wav, tone_pcm8k(0.3, 300.0), 8000)
    async with FakeAgentServer(part_s=0.25, reply_parts=1) as server:
        args = parse(
            "--url",
            server.url,
            "--audio",
            str(caller_wav),
            "--pause",
            "0.3",
            "--lead-in",
            "0.1",
            "--tail",
            "0.1",
            "--out",
            str(heard_wav),
        )
        code = await run_call_command(args)
    out = capsys.readouterr().out
    assert code == 0
    assert "caller: hello.wav" in out and "agent speaking" in out
    assert "marks 1 received / 1 echoed, clears 0" in out
    assert " ms  " in out  # a latency figure in the turn table
    with wave.open(str(heard_wav), "rb") as wav:
        assert wav.getframerate() == 8000 and wav.getnframes() > 8000


async def test_call_command_reports_unusable_audio_without_calling(tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_text("nope")
    assert await run_call_command(parse("--audio", str(bad))) == 2
    assert "not a PCM WAV" in capsys.readouterr().out


async def test_call_command_reports_an_unreachable_server(capsys):
    args = parse("--url", "ws://127.0.0.1:9/media", "--tail", "0")
    assert await run_call_command(args) == 2
    assert "cannot connect" in capsys.readouterr().out
