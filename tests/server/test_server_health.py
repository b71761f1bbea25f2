"""/healthz and /metrics: cheap, always answered, Prometheus text format."""

from __future__ import annotations

import re

from server_harness import Factory, TwilioLeg, eventually, metric_value, serving, settings_for

SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"\})? -?[0-9.e+]+$')


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


async def test_metrics_exposition_is_well_formed(factory: Factory) -> None:
    async with serving(settings_for(), factory) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
        names = set()
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ")
                assert kind in ("counter", "gauge")
                names.add(name)
            elif not line.startswith("# HELP "):
                assert SAMPLE.match(line), line
        for name in (
            "voiceagent_active_calls",
            "voiceagent_calls_total",
            "voiceagent_frames_in_total",
            "voiceagent_frames_out_total",
            "voiceagent_protocol_errors_total",
            "voiceagent_call_failures_total",
            "voiceagent_pipeline_errors_total",
        ):
            assert name in names, name
        assert await metric_value(client, 'voiceagent_protocol_errors_total{kind="flood"}') == 0
        assert await metric_value(client, "voiceagent_up") == 1


class _FactoryWithMetrics(Factory):
    def render_metrics(self) -> str:
        return "# TYPE voiceagent_turn_commits_total counter\nvoiceagent_turn_commits_total 7\n"


class _FactoryWithBrokenMetrics(Factory):
    def render_metrics(self) -> str:
        raise RuntimeError("metrics source broke")


async def test_metrics_include_the_pipeline_factory_series() -> None:
    async with serving(settings_for(), _FactoryWithMetrics()) as client:
        assert await metric_value(client, "voiceagent_turn_commits_total") == 7


async def test_a_broken_factory_metrics_source_does_not_break_the_scrape() -> None:
    async with serving(settings_for(), _FactoryWithBrokenMetrics()) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert await metric_value(client, "voiceagent_up") == 1
