"""Outbound calls end to end on loopback: the real server and receptionist, fakes around them.

``OutboundStack`` runs ``run_server`` with the bundled ``ReceptionistBot`` on cloud-shaped
providers (fake Deepgram STT/TTS and a fake OpenAI-compatible LLM, all protocol-faithful on
127.0.0.1) and a :class:`~tests.telephony.fake_twilio.FakeTwilio` whose callees answer with the
caller emulator. Callee audio is spoken by espeak-ng; the machine's beep is a generated tone.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.telephony.accounts import ACCOUNT, OUR_NUMBER, TOKEN
from tests.telephony.fake_twilio import Callee, FakeTwilio
from voiceagent.emulator.audio import load_wav_pcm8k
from voiceagent.emulator.script import CallerLine
from voiceagent.emulator.voice import trim_silence
from voiceagent.pipelines.receptionist import ReceptionistBot
from voiceagent.server.in_process import serve_in_process
from voiceagent.settings import Settings
from voiceagent.storage import CallDetail, open_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.fake_deepgram import (  # noqa: E402
    FakeDeepgramHost,
    FakeDeepgramSTT,
    FakeDeepgramTTS,
    FakeUtterance,
)
from fakes.fake_openai import FakeReply  # noqa: E402
from fakes.fake_openai_tools import FakeToolCall, FakeToolReply, FakeToolServer  # noqa: E402

__all__ = ["FakeReply", "FakeToolCall", "FakeToolReply", "OutboundStack", "outbound_stack"]

PHONE_RATE = 8000
GREETING = (
    "Hi, you have reached Sam Taylor. I am not able to take your call right now. "
    "Please leave a message after the tone."
)


def spoken(text: str, folder: Path) -> bytes:
    """``text`` said by espeak-ng, as 8 kHz phone-line PCM16 (the test is skipped without it)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed")
    path = folder / f"line-{abs(hash(text)) % 10**8}.wav"
    if not path.exists():
        subprocess.run([espeak, "-s", "160", "-w", str(path), text], check=True, timeout=30)
    return trim_silence(load_wav_pcm8k(path))


def beep(seconds: float = 0.5, hz: float = 1000.0, amplitude: float = 9000.0) -> bytes:
    """An answering machine's beep: a pure tone, PCM16 at 8 kHz."""
    t = np.arange(round(seconds * PHONE_RATE)) / PHONE_RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(round(seconds * PHONE_RATE) * 2)


def person(folder: Path, *lines: str, pause_s: float = 1.2, **callee: Any) -> Callee:
    """A person: lets the agent greet, then says ``lines``, each after the agent's reply."""
    script = [CallerLine(spoken(text, folder), pause_after_s=pause_s, text=text) for text in lines]
    return Callee(answer="person", script=script, **callee)


def machine(folder: Path, *, greeting: str = GREETING, with_beep: bool = True, **callee) -> Callee:
    """An answering machine: plays its greeting at once (over the agent), then beeps, then
    records for ``record_s``."""
    lines = [
        CallerLine(spoken(greeting, folder), pause_after_s=0.6, text=greeting, wait_for_reply=False)
    ]
    if with_beep:
        lines.append(CallerLine(beep(), pause_after_s=0.0, text="(beep)", wait_for_reply=False))
    callee.setdefault("tail_s", 12.0)  # the machine records this long, then hangs up
    return Callee(
        answer="machine",
        script=lines,
        lead_in_s=0.3,
        wait_for_greeting=False,
        answered_by="machine_end_beep",
        **callee,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class OutboundStack:
    """Everything of one outbound-call test."""

    twilio: FakeTwilio
    settings: Settings
    bot: ReceptionistBot
    stt: FakeDeepgramSTT
    tts: FakeDeepgramTTS
    llm: FakeToolServer
    port: int

    def stored(self, call_sid: str) -> CallDetail:
        """The call's record, as ``voiceagent calls show`` reads it."""
        store = open_store(self.settings.storage, create=False)
        try:
            detail = store.find_call(call_sid)
        finally:
            store.close()
        assert detail is not None, f"no record of {call_sid}"
        return detail


@asynccontextmanager
async def outbound_stack(
    folder: Path,
    *,
    callees: dict[str, Callee],
    heard: list[list[str]] = (),
    replies: list[Any] = (),
    telephony: dict[str, Any] | None = None,
    signing_token: str | None = None,
) -> AsyncIterator[OutboundStack]:
    """The server with the receptionist, the fake providers and the fake Twilio.

    Args:
        folder: Where recordings, the call database and caller audio go.
        callees: How each called number answers.
        heard: The words the fake STT recognizes in each caller utterance, in order.
        replies: The fake LLM's answers, in order.
        telephony: ``settings.telephony`` overrides.
        signing_token: Twilio signs with this token instead of the server's (misconfigured).
    """
    stt = FakeDeepgramSTT(
        [FakeUtterance(words, interim_words=2) for words in heard],
        interim_after_bytes=9600,
        speech_rms=300,
    )
    tts = FakeDeepgramTTS(amplitude=6000, bytes_per_char=480)
    port = free_port()
    async with (
        FakeTwilio(
            ACCOUNT, TOKEN, numbers=(OUR_NUMBER,), callees=callees, signing_token=signing_token
        ) as twilio,
        FakeDeepgramHost(stt, tts) as host,
        FakeToolServer(script=list(replies)) as llm,
    ):
        settings = Settings(
            server={
                "host": "127.0.0.1",
                "port": port,
                "twilio_auth_token": TOKEN,
                "public_host": f"127.0.0.1:{port}",
                "shutdown_grace_s": 0.5,
            },
            twilio={"account_sid": ACCOUNT, "api_base_url": twilio.base_url, "timeout_s": 2.0},
            telephony={"from_number": OUR_NUMBER, **(telephony or {})},
            cloud={
                "deepgram_api_key": "dg-test-key",
                "deepgram_url": host.url,
                "openai_base_url": llm.base_url,
                "openai_api_key": "sk-test",
            },
            agent={"tools": True},
            fallback={"stt": [], "llm": [], "tts": []},
            storage={"dir": str(folder / "calls")},
        )
        bot = ReceptionistBot(settings)
        await bot.start()
        try:
            async with serve_in_process(settings, bot):
                yield OutboundStack(twilio, settings, bot, stt, tts, llm, port)
        finally:
            await bot.stop()
