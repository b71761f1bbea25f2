"""``voiceagent eval``: run scenario calls against the agent and report latency and accuracy."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from loguru import logger

from voiceagent.emulator.conditions import BUILTIN, LineCondition, parse_condition
from voiceagent.eval.scenario import Scenario, ScenarioError, load_scenarios

DEFAULT_FOLDER = Path("evals")


def add_eval_parser(subparsers: Any) -> None:
    """Register the ``eval`` subcommand on an argparse subparsers object."""
    ev = subparsers.add_parser(
        "eval",
        help="run scenario calls (evals/*.toml) and report latency, WER and checks",
        description="Place each scenario's call with the Twilio caller emulator and judge the "
        "agent's replies. Without --url the real server runs in-process with the bundled "
        "receptionist (or --bot) on the offline default. Exit code 1 when a check fails, "
        "2 on bad input.",
    )
    ev.add_argument(
        "files",
        nargs="*",
        metavar="FILES",
        help=f"scenario files or folders of *.toml (default: {DEFAULT_FOLDER}/)",
    )
    ev.add_argument(
        "--bot",
        default=None,
        metavar="MODULE:FACTORY",
        help="the bot to run in-process: package.module:name or path/file.py:name, a factory "
        "f(settings) returning a bot, or a pipeline factory f(call, settings) "
        "(default: the bundled receptionist)",
    )
    ev.add_argument(
        "--url",
        default=None,
        help="Media Streams URL of a running server (ws://HOST:PORT/media); the agent's words "
        "are judged when its call store is readable here (VOICEAGENT_STORAGE__DIR)",
    )
    ev.add_argument(
        "--auth-token",
        default=None,
        help="with --url: sign each upgrade with this Twilio auth token (X-Twilio-Signature)",
    )
    ev.add_argument("--out", default=None, help="write the JSON report to this file")
    ev.add_argument(
        "--html", default=None, help="write the HTML report (plots, audio, timelines) here"
    )
    ev.add_argument(
        "--html-audio",
        choices=("auto", "all", "failed", "none"),
        default="auto",
        help="which calls' audio the HTML report embeds (auto: all up to 40 calls, else the "
        "failed ones)",
    )
    ev.add_argument(
        "--baseline",
        default=None,
        metavar="OLD.json",
        help="compare with a previous run's JSON report (what got better or worse)",
    )
    ev.add_argument(
        "--condition",
        action="append",
        default=[],
        metavar="SPEC",
        help="run every call under this phone-line condition (repeatable): "
        f"{', '.join(BUILTIN)}, or NAME:key=value,… / key=value,… "
        "(noise, snr_db, echo_delay_ms, echo_level_db, loss, loss_burst, jitter_ms, gain_db, "
        "voice)",
    )
    ev.add_argument(
        "--category",
        action="append",
        default=[],
        metavar="NAME",
        help="run only the calls of this category (repeatable)",
    )
    ev.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this call (repeatable)",
    )
    ev.add_argument(
        "--max-wait", type=float, default=15.0, help="seconds to wait for a reply to start (15)"
    )
    ev.add_argument(
        "--tail", type=float, default=2.0, help="seconds on the line after the last reply (2)"
    )


def select_scenarios(
    scenarios: list[Scenario], names: list[str], categories: list[str] | None = None
) -> list[Scenario]:
    """The scenarios named in ``names`` and of ``categories`` (all when empty), in file order.

    Raises:
        ScenarioError: a name or category matches no scenario.
    """
    if categories:
        known = sorted({s.category for s in scenarios if s.category})
        unknown = [c for c in categories if c not in known]
        if unknown:
            raise ScenarioError(
                f"--category {unknown[0]!r}: no call has it (categories: {', '.join(known)})"
            )
        scenarios = [s for s in scenarios if s.category in categories]
    if not names:
        return scenarios
    known_names = {s.name for s in scenarios}
    unknown_names = [n for n in names if n not in known_names]
    if unknown_names:
        raise ScenarioError(
            f"--scenario {unknown_names[0]!r}: no such call "
            f"(calls: {', '.join(sorted(known_names))})"
        )
    return [s for s in scenarios if s.name in names]


def _conditions(specs: list[str]) -> list[LineCondition] | None:
    """The run's conditions (None: each call on its own line).

    Raises:
        ScenarioError: a spec is wrong.
    """
    out = []
    for spec in specs:
        try:
            out.append(parse_condition(spec))
        except ValueError as e:
            raise ScenarioError(f"--condition {spec!r}: {e}") from e
    return out or None


def _error(message: str) -> int:
    logger.error(f"voiceagent eval: {message}")
    print(f"error: {message}", file=sys.stderr)
    return 2


async def run_eval_command(args: argparse.Namespace) -> int:
    """Run ``voiceagent eval``: 0 when every check passed, 1 when one failed, 2 on bad input."""
    from voiceagent.eval.bots import BotSpecError
    from voiceagent.eval.records import CallRecords
    from voiceagent.eval.runner import CallerVoice, EvalRunner, EvalTarget, serve_bot
    from voiceagent.server.in_process import loopback_settings
    from voiceagent.settings import Settings

    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    def runner(target: EvalTarget, voice: CallerVoice) -> EvalRunner:
        return EvalRunner(
            target,
            voice,
            conditions=conditions,
            tail_s=args.tail,
            max_wait_reply_s=args.max_wait,
            progress=progress,
        )

    try:
        scenarios = select_scenarios(
            load_scenarios(args.files or [DEFAULT_FOLDER]),
            list(getattr(args, "scenario", None) or []),
            list(getattr(args, "category", None) or []),
        )
        conditions = _conditions(list(getattr(args, "condition", None) or []))
        baseline = _read_baseline(getattr(args, "baseline", None))
    except ScenarioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    html = getattr(args, "html", None)
    if html:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _error("--html needs matplotlib: pip install 'voiceagent[eval]'")
    try:
        if args.url:
            headers = {}
            if getattr(args, "auth_token", None):
                from voiceagent.emulator.cli import twilio_signature

                headers["X-Twilio-Signature"] = twilio_signature(args.url, args.auth_token)
            settings = Settings.from_env()
            records = CallRecords(settings.storage)
            target = EvalTarget(args.url, records, headers=headers, record_wait_s=3.0, bot="")
            voice = CallerVoice(settings.local)
            report = await runner(target, voice).run(scenarios)
        else:
            settings = loopback_settings()
            bot = getattr(args, "bot", None)
            progress(f"starting {bot or 'the bundled receptionist (offline default)'} in-process")
            async with serve_bot(settings, bot, progress) as (target, voice):
                report = await runner(target, voice).run(scenarios)
    except BotSpecError as e:
        return _error(str(e))
    except (ValueError, RuntimeError, OSError) as e:
        return _error(str(e))
    report.print_text(sys.stdout)
    if baseline is not None:
        from voiceagent.eval.baseline import compare, print_comparison

        print_comparison(compare(baseline, report.to_dict()), sys.stdout)
    for path, write, what in (
        (args.out, report.write_json, "JSON report"),
        (html, lambda p: _write_html(report, p, args, baseline), "HTML report"),
    ):
        if not path:
            continue
        try:
            write(path)
        except OSError as e:
            return _error(f"cannot write {path}: {e}")
        print(f"{what}: {path}")
    return 0 if report.passed else 1


def _read_baseline(path: str | None) -> dict | None:
    """A previous run's JSON report.

    Raises:
        ScenarioError: unreadable, or not an eval report.
    """
    if not path:
        return None
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ScenarioError(f"--baseline {path}: cannot read a JSON report ({e})") from e
    if not isinstance(data, dict) or "overall" not in data or "scenarios" not in data:
        raise ScenarioError(f"--baseline {path}: not a voiceagent eval JSON report")
    return data


def _write_html(report, path: str, args: argparse.Namespace, baseline: dict | None) -> None:
    from voiceagent.eval.html import write_html

    write_html(report, path, audio=getattr(args, "html_audio", "auto"), baseline=baseline)
