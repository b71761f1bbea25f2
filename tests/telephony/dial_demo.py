"""``voiceagent dial`` end to end without Twilio: the real commands against the fakes (tests only).

    .venv/bin/python -m tests.telephony.dial_demo [--answer person|machine] [--keep DIR]

On 127.0.0.1 it starts the fake Twilio (REST API and signed callbacks; its callee is the caller
emulator speaking espeak-ng lines), a fake Deepgram (STT and TTS) and a fake OpenAI-compatible
LLM; then runs ``voiceagent serve`` (one worker: the bundled receptionist on those providers),
``voiceagent dial --to … --wait`` and ``voiceagent calls show SID`` as the user would, printing
each command with its output and what the callee heard, and checks that the callee answered,
that the agent spoke first and that the call's record says how it ended. Exit status 0 when
all of that holds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.telephony.accounts import ACCOUNT, OUR_NUMBER, PERSON, TOKEN
from tests.telephony.fake_twilio import FakeCall, FakeTwilio
from tests.telephony.fake_twilio_cli import _print as print_event
from tests.telephony.outbound_harness import (
    GREETING,
    FakeDeepgramHost,
    FakeDeepgramSTT,
    FakeDeepgramTTS,
    FakeReply,
    FakeToolServer,
    FakeUtterance,
    free_port,
    machine,
    person,
)
from voiceagent.settings import StorageSettings
from voiceagent.storage import open_store

OUTBOUND_GREETING = "Hello, this is the receptionist at Bright Smile Dental calling."
CALLEE_LINE = "Hello who is calling please"
ANSWER = ["Hi,", " this", " is", " Bright", " Smile", " Dental", " about", " your", " cleaning."]
HEARD = {
    "person": [["Hello", "who", "is", "calling", "please?"]],
    "machine": [GREETING.split()],
}
READY_TIMEOUT_S = 60.0
LEAD_IN_S = 1.5
"""The person picks up and waits this long for the agent to speak (then says its line anyway)."""


def voiceagent_command() -> list[str]:
    """The ``voiceagent`` console script of this environment (or ``python -m voiceagent.cli``)."""
    script = Path(sys.executable).with_name("voiceagent")
    return [str(script)] if script.exists() else [sys.executable, "-m", "voiceagent.cli"]


@dataclass
class DemoRun:
    """What one demo call showed."""

    sid: str
    dial_code: int
    dial_output: str
    show_output: str
    call: FakeCall
    agent_first: bool
    end_reason: str


async def _run(command: list[str], env: dict[str, str], say: Callable[[str], None]) -> tuple:
    shown = ["voiceagent", *command[len(voiceagent_command()) :]]
    say("$ " + " ".join(shown))
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    say(text.rstrip())
    return proc.returncode, text


async def _healthy(port: int, server: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.returncode is not None:
            raise RuntimeError(f"voiceagent serve exited with {server.returncode}")
        try:
            with await asyncio.to_thread(
                urllib.request.urlopen, f"http://127.0.0.1:{port}/healthz", timeout=1.0
            ):
                return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"voiceagent serve did not answer within {READY_TIMEOUT_S:.0f} s")


async def _ended(storage: StorageSettings, sid: str, timeout_s: float = 10.0) -> str:
    """The call's end reason, once the server completed its record."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        store = open_store(storage, create=False)
        try:
            detail = store.find_call(sid)
        finally:
            store.close()
        if detail is not None and detail.call.end_reason and detail.call.stream_sid:
            return detail.call.end_reason
        await asyncio.sleep(0.2)
    return ""


async def run_demo(folder: Path, answer: str = "person", say=print) -> DemoRun:
    """Serve, dial, show: one outbound call through the real commands, against the fakes."""
    callee = (
        person(folder, CALLEE_LINE, tail_s=1.5, lead_in_s=LEAD_IN_S)
        if answer == "person"
        else machine(folder, tail_s=4.0)
    )
    stt = FakeDeepgramSTT(
        [FakeUtterance(words, interim_words=2) for words in HEARD[answer]],
        interim_after_bytes=9600,
        speech_rms=300,
    )
    tts = FakeDeepgramTTS(amplitude=6000, bytes_per_char=480)
    port = free_port()
    storage = StorageSettings(dir=folder / "calls")
    async with (
        FakeTwilio(
            ACCOUNT, TOKEN, numbers=(OUR_NUMBER,), callees={PERSON: callee}, on_event=print_event
        ) as twilio,
        FakeDeepgramHost(stt, tts) as host,
        FakeToolServer(script=[FakeReply(tokens=ANSWER)]) as llm,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEAGENT_")}
        env.update(
            {
                "TWILIO_ACCOUNT_SID": ACCOUNT,
                "TWILIO_AUTH_TOKEN": TOKEN,
                "TWILIO_FROM_NUMBER": OUR_NUMBER,
                "PUBLIC_HOST": f"127.0.0.1:{port}",
                "VOICEAGENT_TWILIO__API_BASE_URL": twilio.base_url,
                "DEEPGRAM_API_KEY": "dg-test-key",
                "VOICEAGENT_CLOUD__DEEPGRAM_URL": host.url,
                "OPENAI_API_KEY": "sk-test",
                "OPENAI_BASE_URL": llm.base_url,
                "VOICEAGENT_FALLBACK__STT": "",
                "VOICEAGENT_FALLBACK__LLM": "",
                "VOICEAGENT_FALLBACK__TTS": "",
                "VOICEAGENT_STORAGE__DIR": str(storage.dir),
                "VOICEAGENT_TELEPHONY__OUTBOUND_GREETING": OUTBOUND_GREETING,
            }
        )
        log = (folder / "server.log").open("wb")
        server = await asyncio.create_subprocess_exec(
            *voiceagent_command(),
            "-v",
            "serve",
            "--port",
            str(port),
            "--workers",
            "1",
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await _healthy(port, server)
            command = [*voiceagent_command(), "dial", "--to", PERSON, "--wait"]
            code, dialed = await _run(command, env, say)
            sid = next(w for w in dialed.split() if w.startswith("CA")).rstrip(":")
            call = await twilio.finished(sid)
            end_reason = await _ended(storage, sid)
            _, shown = await _run([*voiceagent_command(), "calls", "show", sid], env, say)
        finally:
            if server.returncode is None:
                server.terminate()
                await asyncio.wait_for(server.wait(), 30)
            log.close()
    report = call.report
    first_caller = report.turns[0].caller_start_s if report and report.turns else None
    agent_first = bool(
        report
        and report.agent_utterances_s
        and (first_caller is None or report.agent_utterances_s[0] < first_caller)
    )
    return DemoRun(sid, code, dialed, shown, call, agent_first, end_reason)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answer", choices=("person", "machine"), default="person")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run's files here")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is needed for the callee's voice", file=sys.stderr)
        return 2
    folder = args.keep or Path(tempfile.mkdtemp(prefix="dial-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    run = asyncio.run(run_demo(folder, args.answer))
    report = run.call.report
    if report is not None and report.agent_utterances_s:
        caller = report.turns[0].caller_start_s if report.turns else None
        heard = f"; the callee first spoke at {caller:.2f} s" if caller is not None else ""
        print(
            f"\nthe callee's emulator: agent audio first at {report.agent_utterances_s[0]:.2f} s "
            f"after the stream opened{heard}; Twilio statuses {run.call.statuses()}"
        )
    ok = run.dial_code == 0 and run.agent_first and bool(run.end_reason)
    print(f"{'OK' if ok else 'FAILED'}: {run.sid} ended by {run.end_reason or '?'}")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
