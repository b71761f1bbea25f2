"""/healthz and /metrics: cheap, always answered, produced by prometheus_client.

The turn-taking series belong to the server: a bot of the user's own (here a minimal one: a
scripted recognizer, the turn engine and a reply of a few frames) has them after one call.
"""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from prometheus_client.parser import text_string_to_metric_families
from server_harness import Factory, TwilioLeg, eventually, metric_value, serving, settings_for

from voiceagent.settings import Settings
from voiceagent.turns.processor import TurnProcessor


async def test_healthz_reports_ok_and_active_calls(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        resp = await client.get("/healthz")
        assert resp.status == 200
        body = await resp.json()
        assert body["status"] == "ok"
        assert body["active_calls"] == 0
        assert body["signatures_checked"] is False

        leg = TwilioLeg(await client.ws_connect("/media"), "CA" + "3" * 32, "+15550001")
        await leg.connect_and_start()

        async def one_active() -> bool:
            return (await (await client.get("/healthz")).json())["active_calls"] == 1

        assert await eventually(one_active)
        await leg.stop()
        assert await leg.wait_closed() == 1000


async def scrape(client: Any) -> dict[str, Any]:
    """``/metrics`` parsed by prometheus_client's own parser: family name → family."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return {f.name: f for f in text_string_to_metric_families(await resp.text())}


async def test_metrics_parse_with_prometheus_clients_parser(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        families = await scrape(client)
        kinds = {name: family.type for name, family in families.items()}
        for name, kind in {
            "voiceagent_up": "gauge",
            "voiceagent_active_calls": "gauge",
            "voiceagent_calls": "counter",
            "voiceagent_frames_in": "counter",
            "voiceagent_frames_out": "counter",
            "voiceagent_protocol_errors": "counter",
            "voiceagent_call_failures": "counter",
            "voiceagent_pipeline_errors": "counter",
            "voiceagent_call_duration_seconds": "histogram",
            "voiceagent_max_calls": "gauge",
            "voiceagent_loop_lag_seconds": "gauge",
            "voiceagent_turn_commits": "counter",
            "voiceagent_turn_interruptions": "counter",
            "voiceagent_turn_commit_delay_seconds": "histogram",
            "voiceagent_turn_reply_delay_seconds": "histogram",
        }.items():
            assert kinds.get(name) == kind, (name, kinds.get(name))
        assert await metric_value(client, 'voiceagent_protocol_errors_total{kind="flood"}') == 0
        assert await metric_value(client, "voiceagent_up") == 1
        assert await metric_value(client, "voiceagent_turn_commits_total") == 0


async def test_a_scraper_asking_for_openmetrics_gets_it(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        resp = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await resp.text()).endswith("# EOF\n")


async def test_each_app_counts_its_own_calls(factory: Factory) -> None:
    # Several apps in one process (tests, embedding): one registry each, no shared series.
    async with (
        serving(settings_for(), factory) as busy,
        serving(settings_for(), Factory()) as idle,
    ):
        leg = TwilioLeg(await busy.ws_connect("/media"), "CA" + "4" * 32, "+15550004")
        await leg.connect_and_start()
        await leg.say(25)
        assert await leg.hear_media(5) >= 5  # the echo agent speaks back
        await leg.stop()
        assert await leg.wait_closed() == 1000

        async def counted() -> bool:
            return await metric_value(busy, "voiceagent_active_calls") == 0

        assert await eventually(counted)
        assert await metric_value(busy, "voiceagent_calls_total") == 1
        assert await metric_value(busy, 'voiceagent_calls_ended_total{reason="stop"}') == 1
        assert await metric_value(busy, "voiceagent_frames_in_total") == 25
        assert await metric_value(busy, "voiceagent_frames_out_total") >= 5
        assert await metric_value(busy, "voiceagent_call_duration_seconds_count") == 1
        assert await metric_value(idle, "voiceagent_calls_total") == 0
        assert await metric_value(idle, "voiceagent_frames_in_total") == 0


# -- a bot of the user's own: no turn metrics of its own, the server's for it -----------------


class ScriptedRecognizer(FrameProcessor):
    """Hears the caller speak from their 40th to their 200th ms of audio and says what they said."""

    def __init__(self, words: str) -> None:
        super().__init__()
        self._words = words
        self._ms = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if not isinstance(frame, InputAudioRawFrame):
            return
        before = self._ms
        self._ms += round(1000 * len(frame.audio) / (2 * frame.sample_rate))
        if before < 40 <= self._ms:
            await self.push_frame(VADUserStartedSpeakingFrame(start_secs=0.02))
        elif before < 200 <= self._ms:
            await self.push_frame(VADUserStoppedSpeakingFrame(stop_secs=0.02))
            await self.push_frame(TranscriptionFrame(self._words, "caller", "", finalized=True))


class ShortReply(FrameProcessor):
    """Answers each committed turn with 0.5 s of agent audio."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, UserStoppedSpeakingFrame):
            for _ in range(25):
                await self.push_frame(TTSAudioRawFrame(b"\x10\x00" * 320, 16000, 1, "reply"))


class MinimalBot:
    """A user's bot: a factory building its own chain around the turn engine."""

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        return [ScriptedRecognizer("I'd like an appointment."), TurnProcessor(), ShortReply()]


async def test_a_custom_bot_has_the_servers_turn_metrics_after_a_call() -> None:
    async with serving(settings_for(), MinimalBot()) as client:
        leg = TwilioLeg(await client.ws_connect("/media"), "CA" + "5" * 32, "+15550005")
        await leg.connect_and_start()
        await leg.say(12)
        assert await leg.hear_media(10) >= 10  # the reply, after the commit
        await leg.stop()
        assert await leg.wait_closed() == 1000

        async def call_over() -> bool:
            return await metric_value(client, "voiceagent_active_calls") == 0

        assert await eventually(call_over)
        families = await scrape(client)
        samples = {s.name: s.value for f in families.values() for s in f.samples}
        assert samples["voiceagent_turn_commits_total"] == 1
        assert samples["voiceagent_turn_speculative_starts_total"] >= 1
        assert samples["voiceagent_turn_commit_delay_seconds_count"] == 1
        assert samples["voiceagent_turn_reply_delay_seconds_count"] == 1
        assert 0 < samples["voiceagent_turn_reply_delay_seconds_sum"] < 5
