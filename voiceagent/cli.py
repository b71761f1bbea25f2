"""Command line: ``voiceagent serve | call | demo | eval | calls | phone-link | dial | config``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from loguru import logger

from voiceagent import __version__


def _configure_logging(verbose: int) -> None:
    logger.enable("voiceagent")  # the library keeps quiet unless the application asks
    logger.remove()
    level = "DEBUG" if verbose > 1 else "INFO" if verbose == 1 else "WARNING"
    logger.add(sys.stderr, level=level, format="{time:HH:mm:ss.SSS} {level: <7} {name}: {message}")


def _settings(args: argparse.Namespace):
    from voiceagent.settings import Settings

    server: dict = {}
    for name in ("host", "port", "public_host", "insecure"):
        value = getattr(args, name, None)
        if value not in (None, False):
            server[name] = value
    return Settings.from_env(server=server or None)


DEFAULT_BOT = "voiceagent.pipelines.receptionist:ReceptionistBot"
READS_SETTINGS = ("serve", "demo", "eval", "dial", "calls", "phone-link", "config")
"""Commands whose settings are checked before they start: a typo stops them at once."""


def _check_settings() -> int | None:
    """Print each problem of the environment's settings once; 2 when there is one."""
    from voiceagent.settings import Settings, SettingsError

    try:
        Settings.from_env()
    except SettingsError as e:
        _print_problems(e)
        return 2
    return None


def _print_problems(error: Exception) -> None:
    for problem in getattr(error, "problems", None) or [str(error)]:
        print(f"error: {problem}", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    from voiceagent.server.app import check_security
    from voiceagent.server.workers import WorkerPool, default_workers, load_bot_factory
    from voiceagent.services.reachability import warn_unreachable

    settings = _settings(args)
    bot_spec = args.bot or DEFAULT_BOT
    load_bot_factory(bot_spec)  # a wrong --bot fails here, before any worker starts
    workers = args.workers or settings.server.workers or default_workers(settings)
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    check_security(settings)
    asyncio.run(warn_unreachable(settings))  # a wrong URL is said at once, not at the first call
    if workers == 1:
        return asyncio.run(_serve_one(settings, bot_spec))
    level = "DEBUG" if args.verbose > 1 else "INFO" if args.verbose == 1 else "WARNING"
    pool = WorkerPool(settings, workers, bot_spec, level)
    return pool.run(on_started=lambda port: _listening(settings, port, workers))


def _listening(settings, port: int, workers: int = 1) -> None:
    processes = f", {workers} workers" if workers > 1 else ""
    print(
        f"voiceagent listening on http://{settings.server.host}:{port} "
        f"(POST /twiml, ws /media, /healthz, /metrics{processes})",
        flush=True,
    )
    if settings.phone.enabled:
        from voiceagent.server.phone_links import link_secret

        signed = " (signed links: voiceagent phone-link)" if link_secret(settings) else ""
        print(f"browser softphone: http://{settings.server.host}:{port}/phone{signed}", flush=True)


async def _serve_one(settings, bot_spec: str) -> int:
    from voiceagent.server.app import run_server
    from voiceagent.server.workers import load_bot_factory

    bot = load_bot_factory(bot_spec)(settings)
    try:
        await bot.start(progress=lambda msg: print(f"… {msg}", flush=True))
        await run_server(settings, bot, on_started=lambda port: _listening(settings, port))
    finally:
        await bot.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``voiceagent`` console script."""
    _configure_logging(0)  # quiet until -v is known (pipecat logs a banner on import)
    parser = argparse.ArgumentParser(prog="voiceagent", description="Real-time phone voice agent.")
    parser.add_argument("--version", action="version", version=f"voiceagent {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v info, -vv debug logs"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the Twilio webhook + Media Streams server",
        description="Serve phone calls: POST /twiml answers Twilio's webhook with a Media "
        "Stream, ws /media holds each call with the bot (the bundled receptionist unless "
        "--bot), GET /phone is the browser softphone, /healthz and /metrics report. Settings "
        "come from VOICEAGENT_<SECTION>__<FIELD> and the providers' variables (voiceagent "
        "config prints them); an invalid one stops the server at startup.",
    )
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8080)")
    serve.add_argument("--public-host", default=None, help="host name Twilio reaches (for TwiML)")
    serve.add_argument(
        "--insecure", action="store_true", help="allow a public bind without TWILIO_AUTH_TOKEN"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes sharing the port (default: one per core; one with local models)",
    )
    serve.add_argument(
        "--bot",
        default=None,
        metavar="MODULE:FACTORY",
        help=(
            "module:factory or path/to/file.py:factory: the callable making the bot from settings"
            f" (default {DEFAULT_BOT})"
        ),
    )

    from voiceagent.emulator.cli import add_call_parser

    add_call_parser(sub)

    demo = sub.add_parser(
        "demo",
        help="offline demo: server + emulated caller, multi-turn call",
        description="Hold a scripted multi-turn phone call on this machine: the server runs "
        "in-process on 127.0.0.1 with the bot (the bundled receptionist unless --bot), an "
        "emulated Twilio caller speaks its lines (Piper voice, 8 kHz mu-law), both sides' "
        "transcripts and each turn's latency are printed, and what the caller heard is written "
        "to a WAV. No keys and no network needed. Exit code 1 when fewer than 4 lines got a "
        "reply.",
    )
    demo.add_argument(
        "--out", default="demo-heard.wav", help="WAV of what the caller heard (demo-heard.wav)"
    )
    demo.add_argument("--port", type=int, default=0, help="server port (default: any free)")
    demo.add_argument(
        "--browser",
        action="store_true",
        help="no emulated caller: serve the softphone page and open it (you are the caller)",
    )
    demo.add_argument(
        "--bot",
        default=None,
        metavar="MODULE:FACTORY",
        help=(
            "module:factory or path/to/file.py:factory: the callable making the bot from settings"
            f" (default {DEFAULT_BOT})"
        ),
    )

    from voiceagent.eval.cli import add_eval_parser

    add_eval_parser(sub)

    from voiceagent.storage.cli import add_calls_parser

    add_calls_parser(sub)

    from voiceagent.server.phone_links import add_phone_link_parser

    add_phone_link_parser(sub)

    from voiceagent.telephony.cli import add_dial_parser

    add_dial_parser(sub)

    from voiceagent.settings.cli import add_config_parser

    add_config_parser(sub)

    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    # Idle OpenMP threads (CTranslate2, onnxruntime) sleep rather than spin: 2 cores are shared
    # by Whisper, Silero, Piper and the llama.cpp server; spinning cost ~2x LLM prompt speed.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.command in READS_SETTINGS and (failed := _check_settings()) is not None:
        return failed
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "call":
            from voiceagent.emulator.cli import run_call_command

            return asyncio.run(run_call_command(args))
        if args.command == "demo":
            if args.browser:
                from voiceagent.demo_browser import run_browser_demo

                return asyncio.run(run_browser_demo(args))
            from voiceagent.demo import run_demo

            return asyncio.run(run_demo(args))
        if args.command == "eval":
            from voiceagent.eval.cli import run_eval_command

            return asyncio.run(run_eval_command(args))
        if args.command == "calls":
            from voiceagent.storage.cli import run_calls_command

            return run_calls_command(args, sys.stdout)
        if args.command == "phone-link":
            from voiceagent.server.phone_links import run_phone_link_command

            return run_phone_link_command(args, sys.stdout)
        if args.command == "dial":
            from voiceagent.telephony.cli import run_dial_command

            return asyncio.run(run_dial_command(args))
        if args.command == "config":
            from voiceagent.settings.cli import run_config_command

            return run_config_command(args, sys.stdout)
    except KeyboardInterrupt:
        return 130
    except (ValueError, RuntimeError) as e:
        _print_problems(e)  # printed once: the CLI's logger would repeat it on stderr
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
