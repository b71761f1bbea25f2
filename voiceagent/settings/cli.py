"""``voiceagent config``: the settings in effect (secrets masked) and offline checks of them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import Any, TextIO


def add_config_parser(subparsers: Any) -> None:
    """Register the ``config`` subcommand on an argparse subparsers object."""
    config = subparsers.add_parser(
        "config",
        help="print the settings in effect and check them offline",
        description="Print every setting in effect, as the VOICEAGENT_<SECTION>__<FIELD> "
        "variable that sets it (secrets masked; '# from X' marks a value set by the "
        "environment), then check offline what can be checked: URLs parse, the keys of the "
        "chosen providers are present, local model files are installed, PUBLIC_HOST is a host "
        "name. Exit code 1 when a check fails, 2 when a setting is invalid.",
    )
    config.add_argument(
        "--json", action="store_true", help="print the settings and checks as one JSON object"
    )


def run_config_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Print the settings and the checks: 0 when every check passed, 1 when one failed.

    Raises:
        voiceagent.settings.SettingsError: a setting is invalid (the caller prints it).
    """
    from voiceagent.settings import Settings
    from voiceagent.settings.checks import run_checks
    from voiceagent.settings.show import masked_dump, render_settings, shown_settings

    environ = dict(os.environ)
    settings = Settings.from_env(environ)
    checks = run_checks(settings)
    failed = any(check.status == "fail" for check in checks)
    if getattr(args, "json", False):
        report = {
            "settings": masked_dump(settings),
            "checks": [asdict(check) for check in checks],
            "ok": not failed,
        }
        print(json.dumps(report, indent=2), file=out)
        return 1 if failed else 0
    print("# the settings in effect (defaults unless '# from'; secrets masked)", file=out)
    for line in render_settings(shown_settings(settings, environ)):
        print(line, file=out)
    print("\n[checks]", file=out)
    width = max((len(check.what) for check in checks), default=0)
    for check in checks:
        print(f"{check.status:<4}  {check.what:<{width}}  {check.detail}", file=out)
    print(
        f"\n{sum(c.status == 'fail' for c in checks)} failed, "
        f"{sum(c.status == 'warn' for c in checks)} warnings, "
        f"{sum(c.status == 'ok' for c in checks)} ok",
        file=out,
    )
    return 1 if failed else 0
