"""Headless Chromium (Debian's) driven by Playwright, with a fake microphone fed from a WAV.

Chromium is never downloaded (no ``playwright install``): the Debian package's binary is used.
Tests skip when it or Playwright is missing. ``CHROMIUM_FLAGS`` keep the browser off the
network (this machine has none but loopback) and in a fresh profile per test.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soxr

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MIC_RATE = 48000


def require_chromium() -> None:
    """Skip the test without Debian's Chromium or the Playwright package."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (bash scripts/setup.sh installs it)")
    pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")


def spoken(text: str, folder: Path) -> np.ndarray:
    """``text`` as espeak-ng says it, at the fake microphone's rate, silence trimmed."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (the caller's lines are synthesized with it)")
    path = folder / f"line-{abs(hash(text))}.wav"
    subprocess.run([espeak, "-s", "150", "-w", str(path), text], check=True, timeout=30)
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float32)
    audio = soxr.resample(pcm, rate, MIC_RATE)
    loud = np.flatnonzero(np.abs(audio) > 300)
    return audio[loud[0] : loud[-1] + 1].astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * MIC_RATE), np.int16)


def write_microphone(path: Path, *parts: np.ndarray) -> Path:
    """The fake microphone's WAV: the parts one after the other (mono PCM16, 48 kHz)."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(MIC_RATE)
        wav.writeframes(np.concatenate(parts).astype("<i2").tobytes())
    return path


@asynccontextmanager
async def chromium(
    folder: Path, *, microphone: Path | None = None, allow_microphone: bool = True
) -> AsyncIterator[Any]:
    """A fresh headless Chromium page with a fake microphone: ``microphone`` (a WAV, played
    once) or Chromium's own beep.

    Without ``allow_microphone`` the permission prompt is answered "block".
    """
    from playwright.async_api import async_playwright

    args = [*CHROMIUM_FLAGS, "--use-fake-device-for-media-stream"]  # a fake microphone exists
    if microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone}%noloop")
    if allow_microphone:
        args.append("--use-fake-ui-for-media-stream")
    else:
        args.append("--deny-permission-prompts")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(folder / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=args,
            permissions=["microphone"] if allow_microphone else [],
            viewport={"width": 860, "height": 760},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.errors = []
            page.on("pageerror", lambda error: page.errors.append(str(error)))
            yield page
        finally:
            await context.close()


async def wait_for(page: Any, condition: str, timeout_s: float, what: str) -> None:
    """Wait until the JS ``condition`` holds on the page (polls ``window.softphone``)."""
    try:
        await page.wait_for_function(f"() => ({condition})", timeout=timeout_s * 1000, polling=50)
    except Exception as e:
        state = await page.evaluate(
            "JSON.stringify({state: softphone.state, message: softphone.message, "
            "stats: softphone.stats, log: softphone.log.slice(-30)})"
        )
        problem = f"{what} did not happen within {timeout_s} s ({e}); page: {state}"
        raise AssertionError(problem) from e


class TcpRelay:
    """A loopback TCP relay between the page and the server, which can drop every connection
    at once (a lost network: no close handshake on either side)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def drop(self) -> None:
        """Abort every relayed connection (both sides see a reset)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
