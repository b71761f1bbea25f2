"""``voiceagent demo --browser``: the server comes up on loopback and the page's URL is opened."""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import pytest

import voiceagent.pipelines.receptionist as receptionist
from voiceagent.demo_browser import run_browser_demo


class StubBot:
    """Stands in for the receptionist (its models are not what this test is about)."""

    def __init__(self, settings, on_transcript=None) -> None:
        self.started = self.stopped = False

    async def start(self, progress=None) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def __call__(self, call, settings) -> list:
        return []


async def test_the_demo_serves_the_page_and_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receptionist, "ReceptionistBot", StubBot)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    opened: asyncio.Queue[str] = asyncio.Queue()

    def opener(url: str) -> bool:
        opened.put_nowait(url)
        return True

    demo = asyncio.create_task(run_browser_demo(argparse.Namespace(port=0), opener=opener))
    try:
        url = await asyncio.wait_for(opened.get(), 20)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/phone")
        async with aiohttp.ClientSession() as session, session.get(url) as page:
            assert page.status == 200 and 'id="call"' in await page.text()
    finally:
        demo.cancel()
        assert await asyncio.wait_for(demo, 20) == 0


class TranscribedStubBot(StubBot):
    """A bot whose factory takes the demo's live transcript callback."""

    def __init__(self, settings, on_transcript=None) -> None:
        super().__init__(settings)
        self.on_transcript = on_transcript


class PlainStubBot(StubBot):
    """A bot made from settings alone, as ``serve --bot`` makes it."""

    def __init__(self, settings) -> None:
        super().__init__(settings)


def test_demo_bot_loads_the_factory_like_serve():
    from voiceagent.demo import demo_bot

    def callback(who, text, info):
        return None

    here = "tests.server.test_demo_browser"
    told = demo_bot(argparse.Namespace(bot=f"{here}:TranscribedStubBot"), None, callback)
    # (loaded by its module path: a second copy of this file's classes, so compare by name)
    assert type(told).__name__ == "TranscribedStubBot" and told.on_transcript is callback
    plain = demo_bot(argparse.Namespace(bot=f"{here}:PlainStubBot"), None, callback)
    assert type(plain).__name__ == "PlainStubBot"
    with pytest.raises(ValueError, match="expected module:factory"):
        demo_bot(argparse.Namespace(bot="no-colon"), None, callback)


async def test_the_browser_demo_serves_another_bot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    opened: asyncio.Queue[str] = asyncio.Queue()
    args = argparse.Namespace(port=0, bot="tests.server.test_demo_browser:PlainStubBot")
    demo = asyncio.create_task(run_browser_demo(args, opener=lambda url: opened.put_nowait(url)))
    try:
        url = await asyncio.wait_for(opened.get(), 20)
        assert url.endswith("/phone")
    finally:
        demo.cancel()
        assert await asyncio.wait_for(demo, 20) == 0
