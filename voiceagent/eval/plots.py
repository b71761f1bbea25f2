"""The eval report's plots, drawn by matplotlib as inline SVG (text kept as text).

Each function takes report data and returns one ``<svg>`` element as a string: the latency
distribution, the latency split by stage, the turn-taking rates, the figures per phone-line
condition, and one call's timeline (lanes on the stream clock).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from voiceagent.eval.metrics import percentile  # noqa: E402
from voiceagent.eval.rates import RATES  # noqa: E402
from voiceagent.timeline.latency import STAGES, TurnLatency  # noqa: E402
from voiceagent.timeline.model import CallTimeline  # noqa: E402

if TYPE_CHECKING:
    from voiceagent.eval.report import Figures

plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "svg.hashsalt": "voiceagent",  # the same report twice is the same file
    }
)
STAGE_COLORS = ("#8da0cb", "#fc8d62", "#66c2a5", "#e78ac3", "#a6d854", "#ffd92f")
_LANES = ("caller said", "VAD speech", "STT", "turns", "agent played", "caller heard")


def svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (and the figure closed)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def latency_histogram(latencies_by: dict[str, Sequence[float]]) -> str:
    """End of speech → first agent audio at the caller, per condition, with p50/p90 marked."""
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    everything = [v for values in latencies_by.values() for v in values]
    if not everything:
        ax.text(0.5, 0.5, "no replies", ha="center", transform=ax.transAxes)
        return svg(fig)
    top = max(everything)
    bins = [i * 100.0 for i in range(int(top // 100) + 2)]
    labels = [name for name, values in latencies_by.items() if values]
    ax.hist([latencies_by[n] for n in labels], bins=bins, label=labels, stacked=True)
    ordered = sorted(everything)
    for q, style, height in ((0.5, "-", 0.92), (0.9, "--", 0.78)):
        value = percentile(ordered, q)
        ax.axvline(value, color="black", linestyle=style, linewidth=1)
        ax.annotate(
            f"p{int(q * 100)} {value:.0f} ms",
            (value, ax.get_ylim()[1] * height),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=8,
        )
    ax.set_xlabel("caller end of speech → first agent audio heard (ms)")
    ax.set_ylabel("replies")
    if len(labels) > 1:
        ax.legend(fontsize=7, frameon=False)
    return svg(fig)


def stage_bars(turns: Sequence[tuple[str, TurnLatency]], limit: int = 60) -> str:
    """Each reply's latency as stacked stages (one bar per turn, the slowest first)."""
    rows = sorted(turns, key=lambda item: item[1].total_ms or 0.0, reverse=True)[:limit]
    height = 0.8 + 0.16 * max(1, len(rows))
    fig, ax = plt.subplots(figsize=(7.5, height))
    if not rows:
        ax.text(0.5, 0.5, "no stage figures", ha="center", transform=ax.transAxes)
        return svg(fig)
    names = dict(STAGES)
    for y, (_, turn) in enumerate(rows):
        left = 0.0
        for (key, _), color in zip(STAGES, STAGE_COLORS, strict=True):
            value = turn.stages_ms().get(key)
            if value is None or value <= 0:
                continue
            ax.barh(y, value, left=left, color=color, height=0.7)
            left += value
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("ms after the caller's end of speech")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STAGE_COLORS]
    ax.legend(
        handles,
        [names[k] for k, _ in STAGES],
        fontsize=7,
        ncols=6,
        frameon=False,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
    )
    return svg(fig)


def rates_bars(figures_by: dict[str, Figures]) -> str:
    """Turn-taking rates (and pass rate) per condition."""
    labels = [label for _, label in RATES] + ["checks failed"]
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    width = 0.8 / max(1, len(figures_by))
    for n, (name, figures) in enumerate(figures_by.items()):
        values = [100 * (figures.rates[key].value or 0.0) for key, _ in RATES]
        values.append(100 * (1 - figures.pass_rate) if figures.pass_rate is not None else 0.0)
        xs = [i + n * width for i in range(len(labels))]
        ax.bar(xs, values, width=width, label=name)
    ax.set_xticks(
        [i + width * (len(figures_by) - 1) / 2 for i in range(len(labels))], labels, fontsize=8
    )
    ax.set_ylabel("%")
    if len(figures_by) > 1:
        ax.legend(fontsize=7, frameon=False)
    return svg(fig)


def condition_panels(figures_by: dict[str, Figures]) -> str:
    """How the figures degrade per phone-line condition: pass rate, latency, WER, false stops."""
    names = list(figures_by)
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.6))
    panels = (
        ("checks passed (%)", lambda f: 100 * (f.pass_rate or 0.0)),
        ("latency p50 (ms)", lambda f: f.latency.p50_ms if f.latency else 0.0),
        ("STT WER (%)", lambda f: 100 * f.wer.rate if f.wer else 0.0),
        ("false barge-ins (%)", lambda f: 100 * (f.rates["false_barge_in"].value or 0.0)),
    )
    for ax, (title, value) in zip(axes, panels, strict=True):
        ax.bar(range(len(names)), [value(figures_by[n]) for n in names], color="#8da0cb")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return svg(fig)


def call_timeline(timeline: CallTimeline) -> str:
    """One call on the stream clock: who spoke and was heard when, and what was decided."""
    end = max(1.0, timeline.end_s())
    fig, ax = plt.subplots(figsize=(10, 2.3))
    lane = {name: len(_LANES) - 1 - i for i, name in enumerate(_LANES)}

    def bars(name: str, spans, color: str, cut_color: str | None = None) -> None:
        for s in spans:
            shade = cut_color if cut_color and s.interrupted else color
            ax.broken_barh(
                [(s.start_s, max(0.02, s.end_s - s.start_s))], (lane[name] - 0.35, 0.7), color=shade
            )

    bars("caller said", timeline.caller_lines(), "#4c72b0")
    bars("VAD speech", timeline.speech_spans(), "#8da0cb")
    bars("agent played", timeline.agent_spans(), "#55a868", "#c44e52")
    bars("caller heard", timeline.heard_spans(), "#8fd19e")
    stt = lane["STT"]
    for e in timeline.of("partial"):
        ax.plot(e.at_s, stt, marker="|", color="#999999", markersize=6)
    for e in timeline.of("final"):
        ax.plot(e.at_s, stt, marker="|", color="black", markersize=9)
    turns = lane["turns"]
    styles = {
        "caller": ("o", "#4c72b0", 6),
        "revision": ("o", "#dd8452", 5),
        "speculate": ("^", "#937860", 4),
        "speculation_cancel": ("v", "#937860", 4),
        "pause": ("s", "#ff9f1c", 4),
        "dtmf": ("*", "#8172b3", 8),
        "tool": ("D", "#8172b3", 5),
        "provider": ("P", "black", 7),
        "error": ("X", "black", 7),
    }
    for e in timeline.events:
        style = styles.get(e.kind)
        if style is not None:
            ax.plot(
                e.at_s,
                turns,
                marker=style[0],
                color=style[1],
                markersize=style[2],
                linestyle="none",
            )
        elif e.kind == "decision" and e.data.get("kind") == "barge_in":
            ax.plot(e.at_s, turns, marker="x", color="#c44e52", markersize=9, mew=2)
        elif e.kind == "clear":
            ax.axvline(e.at_s, color="#c44e52", linewidth=0.8, linestyle=":")
        elif e.kind == "mark_echo":
            ax.plot(e.at_s, lane["agent played"] + 0.45, marker="|", color="#55a868", markersize=4)
    ax.set_yticks([lane[n] for n in _LANES], _LANES, fontsize=7)
    ax.set_xlim(0, end)
    ax.set_ylim(-0.6, len(_LANES) - 0.4)
    ax.set_xlabel("seconds (the caller's stream clock)")
    ax.grid(axis="x", linewidth=0.3)
    handles = [
        plt.Line2D([], [], marker=m, color=c, linestyle="none", markersize=s)
        for m, c, s in (
            ("o", "#4c72b0", 6),
            ("^", "#937860", 5),
            ("x", "#c44e52", 8),
            ("s", "#ff9f1c", 5),
            ("|", "black", 8),
        )
    ]
    ax.legend(
        handles,
        ["commit", "speculation", "barge-in", "pause", "final"],
        fontsize=6,
        ncols=5,
        frameon=False,
        loc="upper right",
        bbox_to_anchor=(1.0, 1.22),
    )
    return svg(fig)
