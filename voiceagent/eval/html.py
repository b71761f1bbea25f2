"""The eval as one self-contained HTML file: plots, playable audio, timelines, checks.

Everything is inline (SVG plots from :mod:`voiceagent.eval.plots`, audio as base64 WAV data
URIs, CSS), so the file opens from disk with no network. Per call: its timeline, the server's
stereo recording (caller left, agent right) or what the caller heard, the transcript (what the
caller said and the agent understood; what the agent generated and the caller heard of it) and
each check with its evidence. For the run: latency histogram and percentiles, latency by
stage, turn-taking rates, STT WER, pass rate, figures per phone-line condition, and the
comparison with a baseline run.
"""

from __future__ import annotations

import base64
import html
import io
import time
import wave
from pathlib import Path
from typing import Any

from voiceagent.eval.baseline import compare
from voiceagent.eval.plots import (
    call_timeline,
    condition_panels,
    latency_histogram,
    rates_bars,
    stage_bars,
)
from voiceagent.eval.rates import RATES
from voiceagent.eval.report import Figures, ScenarioResult, SuiteReport, machine
from voiceagent.timeline.latency import STAGES

AUTO_AUDIO_CALLS = 40
"""With ``audio="auto"``, every call's audio up to this many calls, else the failed ones'."""
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:12px} table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} .pass{color:#1a7f37;font-weight:600} .fail{color:#c0262d;font-weight:600}
.na{color:#888} details.call{border:1px solid #ddd;border-radius:6px;margin:10px 0;padding:6px 10px}
details.call>summary{cursor:pointer;font-weight:600} figure{margin:6px 0}
.unheard{text-decoration:line-through;color:#999} .better{color:#1a7f37} .worse{color:#c0262d}
.audio span{font-size:12px;color:#555;margin-right:8px} svg{max-width:100%;height:auto}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _wav_uri(data: bytes) -> str:
    return "data:audio/wav;base64," + base64.b64encode(data).decode("ascii")


def _pcm_wav(pcm: bytes, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def _audio(result: ScenarioResult) -> str:
    parts = []
    path = result.timeline.audio_path if result.timeline is not None else None
    if path and Path(path).is_file():
        try:
            data = Path(path).read_bytes()
            parts.append(
                f"<span>server recording (caller left, agent right)</span>"
                f'<audio controls preload="none" src="{_wav_uri(data)}"></audio>'
            )
        except OSError:
            pass
    if result.heard_pcm8k and not parts:
        parts.append(
            "<span>what the caller heard</span>"
            f'<audio controls preload="none" src="{_wav_uri(_pcm_wav(result.heard_pcm8k))}">'
            "</audio>"
        )
    return f'<div class="audio">{"".join(parts)}</div>' if parts else ""


def _mark(passed: bool | None) -> str:
    return {True: '<span class="pass">PASS</span>', False: '<span class="fail">FAIL</span>'}.get(
        passed, '<span class="na">n/a</span>'
    )


def _figures_table(figures: Figures) -> str:
    rows = [("calls", str(figures.calls))]
    judged = figures.passed + figures.failed
    rate = f" ({100 * figures.pass_rate:.1f} %)" if figures.pass_rate is not None else ""
    rows.append(("checks passed", f"{figures.passed}/{judged}{rate}"))
    if figures.not_evaluated:
        rows.append(("checks not evaluated", str(figures.not_evaluated)))
    if figures.latency:
        lat = figures.latency
        rows.append(
            (
                "latency (end of speech → agent heard)",
                f"p50 {lat.p50_ms:.0f} ms, p90 {lat.p90_ms:.0f} ms, max {lat.max_ms:.0f} ms "
                f"over {lat.count} replies",
            )
        )
    rows.append(("latency by stage (p50 each)", figures.stages_text()))
    if figures.wer:
        rows.append(
            (
                "STT WER",
                f"{100 * figures.wer.rate:.1f} % ({figures.wer.edits} errors / "
                f"{figures.wer.reference_words} words)",
            )
        )
    for key, label in RATES:
        rows.append((label, figures.rates[key].text()))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _conditions(report: SuiteReport, by: dict[str, Figures]) -> str:
    described = {r.condition_name: r.condition for r in report.results}
    head = "<tr><th>condition</th><th>line</th><th>checks</th><th>p50</th><th>p90</th>"
    head += "<th>WER</th>" + "".join(f"<th>{_e(label)}</th>" for _, label in RATES) + "</tr>"
    rows = []
    for name, f in by.items():
        c = described.get(name)
        cells = [
            name,
            c.describe() if c is not None else "clean line",
            f"{100 * f.pass_rate:.0f} %" if f.pass_rate is not None else "-",
            f"{f.latency.p50_ms:.0f} ms" if f.latency else "-",
            f"{f.latency.p90_ms:.0f} ms" if f.latency else "-",
            f"{100 * f.wer.rate:.1f} %" if f.wer else "-",
            *(f.rates[key].text() for key, _ in RATES),
        ]
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _baseline(baseline: dict[str, Any], report: SuiteReport) -> str:
    comparison = compare(baseline, report.to_dict())
    when = comparison.baseline_when
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(when)) if when else "?"
    rows = []
    for f in comparison.figures:
        if f.before is None and f.after is None:
            continue
        css = f.verdict if f.verdict in ("better", "worse") else ""
        rows.append(
            f"<tr><td>{_e(f.name)}</td><td>{_e(f.shown(f.before))}</td>"
            f"<td>{_e(f.shown(f.after))}</td><td class='{css}'>{_e(f.verdict)}</td></tr>"
        )
    lists = "".join(
        f"<li class='worse'>now fails: {_e(k)}</li>" for k in comparison.regressions
    ) + "".join(f"<li class='better'>now passes: {_e(k)}</li>" for k in comparison.fixed)
    return (
        f"<p>Baseline run of {_e(since)}: {len(comparison.fixed)} check(s) now pass, "
        f"{len(comparison.regressions)} now fail ({comparison.new_checks} new, "
        f"{comparison.gone_checks} gone).</p>"
        "<table><tr><th>figure</th><th>baseline</th><th>this run</th><th></th></tr>"
        f"{''.join(rows)}</table><ul>{lists}</ul>"
    )


def _transcript(result: ScenarioResult) -> str:
    rows = []
    seen = result.observation
    for line, obs in zip(result.scenario.lines, seen.lines, strict=True):
        turn = result.line_latency(obs)
        latency = f"{obs.latency_ms:.0f} ms" if obs.latency_ms is not None else "no reply"
        if turn is not None:
            latency += f"<br><small>{_e(turn.split_text())}</small>"
        replies = []
        for heard, full in zip(obs.reply.heard, obs.reply.full, strict=False):
            rest = full[len(heard) :] if full.startswith(heard) else ""
            shown = _e(heard) + (f' <span class="unheard">{_e(rest)}</span>' if rest else "")
            if not full.startswith(heard) and full:
                shown += f"<br><small>generated: {_e(full)}</small>"
            replies.append(shown)
        kind = "" if line.kind.value == "turn" else f" <small>[{_e(line.kind.value)}]</small>"
        rows.append(
            f"<tr><td>{line.index + 1}</td><td>{_e(line.label)}{kind}</td>"
            f"<td>{_e(' | '.join(obs.understood)) if seen.transcript else '<i>unknown</i>'}</td>"
            f"<td>{'<br>'.join(replies)}</td><td>{latency}</td></tr>"
        )
    head = (
        "<tr><th>#</th><th>caller said</th><th>agent understood</th>"
        "<th>agent said (heard; <span class='unheard'>not heard</span>)</th><th>latency</th></tr>"
    )
    greeting = ""
    if seen.greeting.heard:
        greeting = f"<p>Greeting heard: {_e(seen.greeting.heard_text)}</p>"
    return f"{greeting}<table>{head}{''.join(rows)}</table>"


def _checks(result: ScenarioResult) -> str:
    rows = "".join(
        f"<tr><td>{_mark(c.passed)}</td><td>{_e(c.where)}</td><td>{_e(c.check)}</td>"
        f"<td>{_e(c.evidence)}</td></tr>"
        for c in result.checks
    )
    return f"<table><tr><th></th><th>where</th><th>check</th><th>evidence</th></tr>{rows}</table>"


def _call(n: int, result: ScenarioResult, with_audio: bool) -> str:
    sid = result.observation.call_sid
    verdict = _mark(result.failed == 0)
    judged = sum(1 for c in result.checks if c.passed is not None)
    passed = sum(1 for c in result.checks if c.passed)
    head = (
        f"{verdict} {_e(result.scenario.name)} [{_e(result.condition_name)}] — "
        f"{passed}/{judged} checks — {_e(sid)}"
    )
    timeline = ""
    if result.timeline is not None and result.timeline.events:
        timeline = f'<figure class="timeline">{call_timeline(result.timeline)}</figure>'
    description = _e(result.scenario.description)
    category = f" · {_e(result.scenario.category)}" if result.scenario.category else ""
    error = result.observation.error
    error_text = f"<p class='fail'>call failed: {_e(error)}</p>" if error else ""
    return (
        f'<details class="call" id="call-{n}"{" open" if result.failed else ""}>'
        f"<summary>{head}</summary><p>{description}{category} · "
        f"<code>voiceagent calls show {_e(sid)}</code></p>{error_text}{timeline}"
        f"{_audio(result) if with_audio else ''}{_transcript(result)}{_checks(result)}</details>"
    )


def render_html(
    report: SuiteReport, *, audio: str = "auto", baseline: dict[str, Any] | None = None
) -> str:
    """The whole report as one HTML document.

    Args:
        report: the run.
        audio: which calls embed their audio: ``all``, ``failed``, ``none`` or ``auto``
            (all up to ``AUTO_AUDIO_CALLS`` calls, else the failed ones).
        baseline: a previous run's JSON report to compare with.
    """
    results = report.results
    if audio == "auto":
        audio = "all" if len(results) <= AUTO_AUDIO_CALLS else "failed"
    overall = Figures.of(results)
    by = report.by_condition()
    latencies = {
        name: [ms for r in results if r.condition_name == name for ms in r.latencies_ms()]
        for name in by
    }
    turns = [(f"{r.scenario.name} #{t.turn_id}", t) for r in results for t in r.turn_latencies()]
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.started_at))
    took = report.ended_at - report.started_at
    names = dict(STAGES)
    stage_help = ", ".join(names[k] for k, _ in STAGES)
    sections = [
        f"<h1>voiceagent eval</h1><p class='meta'>{_e(started)} · {took:.0f} s · "
        f"target {_e(report.target)} · bot {_e(report.bot or '-')} · {_e(machine())}</p>",
        f"<h2>Result: {_mark(report.passed)}</h2>{_figures_table(overall)}",
        "<h2>Latency</h2><p>Caller end of speech → first agent audio at the caller's ear "
        "(the caller emulator's clock), every reply of the run.</p>"
        f"<figure>{latency_histogram(latencies)}</figure>"
        f"<p>Split by stage ({_e(stage_help)}), from the server's record of each call.</p>"
        f"<figure>{stage_bars(turns)}</figure>",
        f"<h2>Turn-taking</h2><figure>{rates_bars(by)}</figure>",
    ]
    if len(by) > 1:
        sections.append(
            f"<h2>Phone-line conditions</h2>{_conditions(report, by)}"
            f"<figure>{condition_panels(by)}</figure>"
        )
    if baseline is not None:
        sections.append(f"<h2>Compared with the baseline</h2>{_baseline(baseline, report)}")
    calls = "".join(
        _call(n, r, audio == "all" or (audio == "failed" and r.failed > 0))
        for n, r in enumerate(results, 1)
    )
    sections.append(f"<h2>Calls</h2>{calls}")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>voiceagent eval {_e(started)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )


def write_html(
    report: SuiteReport,
    path: str | Path,
    *,
    audio: str = "auto",
    baseline: dict[str, Any] | None = None,
) -> None:
    """Write :func:`render_html` to ``path`` (parent folders created).

    Raises:
        OSError: the file cannot be written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(report, audio=audio, baseline=baseline), encoding="utf-8")
