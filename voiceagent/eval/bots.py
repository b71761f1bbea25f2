"""The bot an eval calls: the bundled receptionist, or any bot named ``module:factory``.

``--bot`` names a Python object as ``package.module:name`` or ``path/to/file.py:name``:

- a *bot factory*: a class or function taking the settings (``factory(settings)``) and
  returning the bot; the bot is a pipeline factory (``await bot(call, settings)`` returns the
  processors between the serializer and the output) and may have ``async start(progress)``
  (load models) and ``async stop()``;
- or a plain *pipeline factory* ``async def factory(call, settings)``.

The bot runs on the real server in this process, which records every call (timeline and
transcript) whatever the bot is; the eval reads that record to judge the agent's words.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from voiceagent.settings import Settings

Progress = Callable[[str], None]


class BotSpecError(ValueError):
    """``--bot`` names nothing usable; the message says what and why."""


def _import(spec: str) -> Any:
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise BotSpecError(f"--bot {spec!r}: expected module:name or path/file.py:name")
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise BotSpecError(f"--bot {spec!r}: no such file {path}")
        module_name = f"voiceagent_bot_{abs(hash(path.resolve())) % 10**8}"
        loader = importlib.util.spec_from_file_location(module_name, path)
        if loader is None or loader.loader is None:
            raise BotSpecError(f"--bot {spec!r}: cannot load {path}")
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module
        try:
            loader.loader.exec_module(module)
        except Exception as e:
            raise BotSpecError(f"--bot {spec!r}: importing {path} failed: {e!r}") from e
    else:
        try:
            module = importlib.import_module(target)
        except Exception as e:
            raise BotSpecError(f"--bot {spec!r}: cannot import {target}: {e!r}") from e
    try:
        return getattr(module, name)
    except AttributeError as e:
        raise BotSpecError(f"--bot {spec!r}: {target} has no {name!r}") from e


def _positional(obj: Any) -> int | None:
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is p.empty)


def load_bot(spec: str | None, settings: Settings) -> Any:
    """The bot ``spec`` names (the bundled ``ReceptionistBot`` when None).

    Raises:
        BotSpecError: the name does not resolve to a bot or pipeline factory.
    """
    if spec is None:
        from voiceagent.pipelines.receptionist import ReceptionistBot

        return ReceptionistBot(settings)
    obj = _import(spec)
    if inspect.isclass(obj) or (callable(obj) and _positional(obj) == 1):
        try:
            bot = obj(settings)
        except Exception as e:
            raise BotSpecError(f"--bot {spec!r}: {obj!r}(settings) failed: {e!r}") from e
    elif callable(obj) and _positional(obj) == 2:
        bot = obj
    else:
        raise BotSpecError(
            f"--bot {spec!r}: expected a bot factory f(settings) or a pipeline factory "
            f"f(call, settings), got {type(obj).__name__}"
        )
    if not callable(bot) or _positional(bot) not in (2, None):
        raise BotSpecError(
            f"--bot {spec!r}: the bot must be a pipeline factory bot(call, settings), "
            f"got {type(bot).__name__}"
        )
    logger.info(f"eval: bot {spec} ({type(bot).__name__})")
    return bot


async def start_bot(bot: Any, progress: Progress | None) -> None:
    """Run the bot's ``start`` (model loading), if it has one."""
    start = getattr(bot, "start", None)
    if start is None:
        return
    if _positional(start) == 1 or "progress" in inspect.signature(start).parameters:
        await start(progress=progress)
    else:
        await start()


async def stop_bot(bot: Any) -> None:
    """Run the bot's ``stop``, if it has one."""
    stop = getattr(bot, "stop", None)
    if stop is not None:
        await stop()


def caller_voice_of(bot: Any) -> Any:
    """The Piper voice a bot already loaded (the receptionist's), to speak the caller's lines."""
    resources = getattr(bot, "resources", None)
    return getattr(resources, "piper_voice", None)
