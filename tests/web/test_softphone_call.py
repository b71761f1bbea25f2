"""Calls from the softphone page in headless Chromium, against the real server and pipeline.

The caller is Chromium's fake microphone playing a WAV (espeak-ng lines with pauses between);
Deepgram (STT, TTS) and the OpenAI-compatible LLM are the protocol-faithful fakes on loopback
(tests/services/fakes). Everything between — server, browser leg, turn-taking, heard ledger,
recording — is the product. Each call is bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.e2e_harness import loopback_settings, serving
from tests.server.phone_leg import TurnFactory
from tests.server.server_harness import serving as serving_app
from tests.server.server_harness import settings_for
from tests.services.fakes.fake_deepgram import (
    FakeDeepgramHost,
    FakeDeepgramSTT,
    FakeDeepgramTTS,
    FakeUtterance,
)
from tests.services.fakes.fake_openai import FakeOpenAIServer, FakeReply
from voiceagent.pipelines.receptionist import ReceptionistBot
from voiceagent.storage import CallDetail, open_store

from .softphone_browser import (
    TcpRelay,
    chromium,
    require_chromium,
    silence,
    spoken,
    wait_for,
    write_microphone,
)

pytestmark = pytest.mark.slow

CALL_BUDGET_S = 60.0
QUESTION = "When do you open tomorrow?"
BARGE_IN = "Wait, can I book Tuesday at two instead?"
ANSWER = (
    "Sure, we open at nine in the morning, and on Fridays we close at three in the afternoon, "
    "and next Tuesday we have openings at two and at four."
)
GREETING = "Hello, thanks for calling Bright Smile Dental. How can I help you today?"
HEARD_AGENT = "#transcript li.agent[data-state=heard]"
SCREENSHOT = os.environ.get("VOICEAGENT_SOFTPHONE_SCREENSHOT")
"""Where to save a screenshot of the page mid-call (the README's is made this way)."""


@dataclass
class CloudAgent:
    page_url: str
    storage: Path
    stt: FakeDeepgramSTT
    tts: FakeDeepgramTTS
    llm: FakeOpenAIServer


@asynccontextmanager
async def cloud_agent(folder: Path, utterances: list[FakeUtterance]) -> AsyncIterator[CloudAgent]:
    """The receptionist on fake Deepgram + a fake LLM, served on loopback, calls recorded."""
    stt = FakeDeepgramSTT(utterances, interim_after_bytes=9600, speech_rms=300)
    # A reply of 4-5 s (30 ms of audio per character): long enough to barge in on.
    tts = FakeDeepgramTTS(amplitude=6000, bytes_per_char=960)
    tokens = [word if i == 0 else f" {word}" for i, word in enumerate(ANSWER.split())]
    async with (
        FakeDeepgramHost(stt, tts) as host,
        FakeOpenAIServer(FakeReply(tokens=tokens, token_delay_s=0.02)) as llm,
    ):
        settings = loopback_settings(
            cloud={
                "deepgram_api_key": "dg-test-key",
                "deepgram_url": host.url,
                "openai_base_url": llm.base_url,
                "openai_api_key": "sk-test",
            },
            fallback={"stt": [], "llm": [], "tts": []},
            storage={"dir": folder / "calls"},
        )
        bot = ReceptionistBot(settings)
        await bot.start()
        try:
            async with serving(settings, bot) as server:
                url = f"http://127.0.0.1:{server.port}/phone"
                yield CloudAgent(url, folder / "calls", stt, tts, llm)
        finally:
            await bot.stop()


def stored(folder: Path, call_sid: str) -> tuple[CallDetail, dict[str, str]]:
    store = open_store(loopback_settings(storage={"dir": folder}).storage, create=False)
    try:
        detail = store.find_call(call_sid)
    finally:
        store.close()
    assert detail is not None, f"call {call_sid} was not recorded"
    with sqlite3.connect(folder / "calls.db") as db:
        (parameters,) = db.execute(
            "SELECT parameters FROM calls WHERE call_sid = ?", (call_sid,)
        ).fetchone()
    return detail, json.loads(parameters)


async def softphone(page: Any, expression: str) -> Any:
    return await page.evaluate(f"softphone.{expression}")


async def test_a_browser_call_hears_the_greeting_gets_an_answer_and_takes_a_barge_in(
    tmp_path: Path,
) -> None:
    require_chromium()
    microphone = write_microphone(
        tmp_path / "caller.wav",
        silence(4.5),  # the page connects, the greeting (2-3 s) plays
        spoken(QUESTION, tmp_path),
        silence(2.0),  # the answer starts…
        spoken(BARGE_IN, tmp_path),  # …and the caller cuts in
        silence(8.0),
    )
    utterances = [
        FakeUtterance(QUESTION.split(), interim_words=2),
        FakeUtterance(BARGE_IN.split(), interim_words=3),
    ]
    async with (
        asyncio.timeout(CALL_BUDGET_S),
        cloud_agent(tmp_path, utterances) as agent,
        chromium(tmp_path, microphone=microphone) as page,
    ):
        await page.goto(agent.page_url)
        await page.click("#call")

        await wait_for(page, f"document.querySelector('{HEARD_AGENT}')", 15, "the greeting")
        assert await page.inner_text(f"{HEARD_AGENT} .text") == GREETING
        # The transcript follows the caller live: a partial, then the committed question.
        await wait_for(page, "softphone.stats.events.committed >= 1", 15, "the question's commit")
        caller = "#transcript li.caller[data-state=committed] .text"
        assert await page.inner_text(caller) == QUESTION
        kinds = [entry["kind"] for entry in await softphone(page, "log")]
        assert "partial" in kinds and kinds.index("partial") < kinds.index("committed")

        # The answer plays, the caller barges in: the server clears and the page's buffer empties.
        await wait_for(page, "softphone.stats.clears >= 1", 15, "the barge-in's clear")
        await wait_for(page, "softphone.stats.lastClear !== null", 2, "the playback flush")
        await wait_for(page, "softphone.stats.events.committed >= 2", 15, "the barge-in's commit")
        await wait_for(page, f"document.querySelectorAll('{HEARD_AGENT}').length >= 2", 5, "cut")
        if SCREENSHOT:
            await page.screenshot(path=SCREENSHOT)
        log = await softphone(page, "log")
        first_commit, second_commit = [i for i, e in enumerate(log) if e["kind"] == "committed"][:2]
        at_clear = next(i for i, e in enumerate(log) if e["kind"] == "cleared")
        kinds = [e["kind"] for e in log]
        assert "playing" in kinds[first_commit:at_clear], log  # the answer was audible…
        assert "playing" not in kinds[at_clear:second_commit], log  # …and stopped at the clear:
        assert log[at_clear]["framesReceived"] == log[second_commit]["framesReceived"], log
        assert await softphone(page, "stats.lastClear.droppedMs") >= 0  # the buffer was emptied

        cut = page.locator(HEARD_AGENT).nth(1)
        assert await cut.get_attribute("data-interrupted") == "true"
        assert await cut.locator(".tag").inner_text() == "you cut in"
        heard = await cut.locator(".text").inner_text()
        assert ANSWER.startswith(heard.replace("\n", " ").strip()[:5]) or heard.strip() == ANSWER
        latency = await cut.get_attribute("data-latency-ms")
        assert latency is not None and 0 < int(latency) < 5000

        call_sid = await softphone(page, "stats.callSid")
        stats = await softphone(page, "stats")
        # Marks come back as their audio plays (the reply now playing may still owe some).
        assert 0 < stats["marksEchoed"] <= stats["marksReceived"]
        assert stats["framesDropped"] == 0 and stats["framesSent"] > 300  # > 6 s of microphone
        await page.click("#hangup")
        await wait_for(page, "softphone.state === 'ended'", 5, "the hang-up")
        assert await page.inner_text("#status") == "You hung up."
        assert page.errors == []

    detail, parameters = stored(agent.storage, call_sid)
    assert parameters == {"From": "client:browser", "channel": "browser", "line": "mulaw-8k"}
    call = detail.call
    assert (call.from_number, call.end_reason) == ("client:browser", "caller_hung_up")
    assert call.ended_at is not None and call.interrupted_turns >= 1
    said = [(e.kind, e.text, e.interrupted) for e in detail.events if e.kind in ("caller", "agent")]
    assert said[0] == ("agent", GREETING, False)
    assert said[1] == ("caller", QUESTION, None)
    reply = next(e for e in detail.events if e.kind == "agent" and e.full_text == ANSWER)
    assert reply.interrupted and ANSWER.startswith(reply.text)
    assert ("caller", BARGE_IN, None) in said
    assert agent.tts.spoken[0].strip() == GREETING
    asked = [request["messages"][-1] for request in agent.llm.requests]
    assert {"role": "user", "content": QUESTION} in asked


async def test_a_wideband_browser_call_carries_16khz_pcm(tmp_path: Path) -> None:
    require_chromium()
    microphone = write_microphone(
        tmp_path / "caller.wav", silence(3.0), spoken(QUESTION, tmp_path), silence(8.0)
    )
    utterances = [FakeUtterance(QUESTION.split(), interim_words=2)]
    async with (
        asyncio.timeout(CALL_BUDGET_S),
        cloud_agent(tmp_path, utterances) as agent,
        chromium(tmp_path, microphone=microphone) as page,
    ):
        await page.goto(agent.page_url)
        await page.check("input[value=pcm16-16k]")
        await page.click("#call")
        await wait_for(page, "softphone.stats.events.committed >= 1", 20, "the question's commit")
        await wait_for(page, "softphone.stats.events.agent_text >= 2", 10, "the answer")
        await wait_for(page, "softphone.stats.playing", 5, "the answer playing")
        assert "Wideband" in await page.inner_text("#status")
        call_sid = await softphone(page, "stats.callSid")
        await page.click("#hangup")
        await wait_for(page, "softphone.state === 'ended'", 5, "the hang-up")
        assert page.errors == []
    detail, parameters = stored(agent.storage, call_sid)
    assert parameters["line"] == "pcm16-16k"
    assert [e.text for e in detail.events if e.kind == "caller"] == [QUESTION]
    assert len(agent.stt.audio) > 32000  # the caller's 16 kHz audio reached the STT


async def test_a_denied_microphone_is_explained_and_places_no_call(tmp_path: Path) -> None:
    require_chromium()
    folder = tmp_path / "calls"
    settings = settings_for().model_copy(
        update={"storage": settings_for().storage.model_copy(update={"dir": folder})}
    )
    factory = TurnFactory()
    async with (
        asyncio.timeout(CALL_BUDGET_S),
        serving_app(settings, factory) as client,
        chromium(tmp_path, allow_microphone=False) as page,
    ):
        await page.goto(f"http://127.0.0.1:{client.port}/phone")
        await page.click("#call")
        await wait_for(page, "softphone.state === 'ended'", 10, "the refusal")
        error = await page.inner_text("#error")
        assert error.startswith("Microphone access was denied, so no call was placed.")
        assert await page.is_enabled("#call") and not await page.is_enabled("#hangup")
    assert factory.calls == []  # no socket was opened, no pipeline built
    assert not (folder / "calls.db").exists()


async def test_a_lost_connection_is_explained_and_the_call_record_ends(tmp_path: Path) -> None:
    require_chromium()
    folder = tmp_path / "calls"
    settings = settings_for().model_copy(
        update={"storage": settings_for().storage.model_copy(update={"dir": folder})}
    )
    async with (
        asyncio.timeout(CALL_BUDGET_S),
        serving_app(settings, TurnFactory(frames_per_turn=25)) as client,
        TcpRelay(client.port) as relay,
        chromium(tmp_path) as page,  # Chromium's own fake microphone (a beep)
    ):
        await page.goto(f"http://127.0.0.1:{relay.port}/phone")
        await page.click("#call")
        await wait_for(page, "softphone.stats.events.heard >= 1", 10, "the agent's first turn")
        call_sid = await softphone(page, "stats.callSid")
        relay.drop()  # the network goes away: no close frame either way
        await wait_for(page, "softphone.state === 'ended'", 10, "the page noticing")
        assert await page.inner_text("#error") == "The connection to the agent was lost."
        assert await page.is_enabled("#call")
    detail, parameters = stored(folder, call_sid)
    assert parameters["channel"] == "browser"
    assert detail.call.ended_at is not None and detail.call.end_reason == "caller_hung_up"
