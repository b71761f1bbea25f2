"""The public API: every exported name resolves, and importing voiceagent logs nothing."""

import subprocess
import sys

import voiceagent


def test_every_public_name_resolves():
    assert set(voiceagent.__all__) == {"__version__", *voiceagent._EXPORTS}
    for name in voiceagent.__all__:
        assert getattr(voiceagent, name) is not None, name


def test_the_library_configures_no_logging_of_its_own():
    # An invalid tool call logs a warning inside voiceagent: silent until the app enables it.
    code = (
        "import asyncio\n"
        "from loguru import logger\n"
        "import voiceagent\n"
        "lines = []\n"
        "logger.remove()\n"
        "ours = lambda r: r['name'].startswith('voiceagent')\n"
        "logger.add(lines.append, level='TRACE', filter=ours)\n"
        "from pydantic import BaseModel\n"
        "class Count(BaseModel):\n"
        "    n: int\n"
        "async def h(args): return {}\n"
        "tool = voiceagent.AgentTool('t', '', Count, h, side_effects=False)\n"
        "asyncio.run(tool.call({}))\n"
        "quiet = len(lines)\n"
        "logger.enable('voiceagent')\n"
        "asyncio.run(tool.call({}))\n"
        "print(quiet, len(lines))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "1"]
