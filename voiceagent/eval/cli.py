"""``voiceagent eval``: run scenario calls against the agent and report latency and accuracy."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from loguru import logger

from voiceagent.eval.scenario import Scenario, ScenarioError, load_scenarios

DEFAULT_FOLDER = Path("evals")


def add_eval_parser(subparsers: Any) -> None:
    """Register the ``eval`` subcommand on an argparse subparsers object."""
    ev = subparsers.add_parser(
        "eval",
        help="run scenario calls (evals/*.toml) and report latency, WER and checks",
        description="Place each scenario's call with the Twilio caller emulator and judge the "
        "agent's replies. Without --url the real server runs in-process with the bundled "
        "receptionist on the offline default. Exit code 1 when a check fails, 2 on bad input.",
    )
    ev.add_argument(
        "files",
        nargs="*",
        metavar="FILES",
        help=f"scenario files or folders of *.toml (default: {DEFAULT_FOLDER}/)",
    )
    ev.add_argument(
        "--url",
        default=None,
        help="Media Streams URL of a running server (ws://HOST:PORT/media); the agent's words "
        "and transcript are then not observable",
    )
    ev.add_argument(
        "--auth-token",
        default=None,
        help="with --url: sign each upgrade with this Twilio auth token (X-Twilio-Signature)",
    )
    ev.add_argument("--out", default=None, help="write the JSON report to this file")
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


def select_scenarios(scenarios: list[Scenario], names: list[str]) -> list[Scenario]:
    """The scenarios named in ``names`` (all when empty), in file order.

    Raises:
        ScenarioError: a name matches no scenario.
    """
    if not names:
        return scenarios
    known = {s.name for s in scenarios}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ScenarioError(
            f"--scenario {unknown[0]!r}: no such call (calls: {', '.join(sorted(known))})"
        )
    return [s for s in scenarios if s.name in names]


async def run_eval_command(args: argparse.Namespace) -> int:
    """Run ``voiceagent eval``: 0 when every check passed, 1 when one failed, 2 on bad input."""
    from voiceagent.eval.runner import CallerVoice, EvalRunner, EvalTarget, bundled_bot
    from voiceagent.server.in_process import loopback_settings
    from voiceagent.settings import Settings

    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    def runner(target: EvalTarget, voice: CallerVoice) -> EvalRunner:
        return EvalRunner(
            target, voice, tail_s=args.tail, max_wait_reply_s=args.max_wait, progress=progress
        )

    try:
        scenarios = select_scenarios(
            load_scenarios(args.files or [DEFAULT_FOLDER]), list(args.scenario or [])
        )
    except ScenarioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        if args.url:
            headers = {}
            if getattr(args, "auth_token", None):
                from voiceagent.emulator.cli import twilio_signature

                headers["X-Twilio-Signature"] = twilio_signature(args.url, args.auth_token)
            target = EvalTarget(args.url, headers=headers)
            voice = CallerVoice(Settings.from_env().local)
            report = await runner(target, voice).run(scenarios)
        else:
            settings = loopback_settings()
            progress("starting the bundled receptionist (offline default) in-process")
            async with bundled_bot(settings, progress) as (target, voice):
                report = await runner(target, voice).run(scenarios)
    except (ValueError, RuntimeError, OSError) as e:
        logger.error(f"voiceagent eval: {e}")
        print(f"error: {e}", file=sys.stderr)
        return 2
    report.print_text(sys.stdout)
    if args.out:
        try:
            report.write_json(args.out)
        except OSError as e:
            logger.error(f"voiceagent eval: cannot write {args.out}: {e}")
            print(f"error: cannot write {args.out}: {e}", file=sys.stderr)
            return 2
        print(f"JSON report: {args.out}")
    return 0 if report.passed else 1
