"""Summarize a py-spy ``raw`` (collapsed stacks) profile: where the CPU went, by share.

    python bench/pyspy_summary.py profile.txt [--top 25]

Each line of the file is ``frame;frame;...;leaf COUNT``; a frame reads
``function (path/file.py:line)`` (py-spy ``--nolineno`` drops the line). Prints the functions
with the largest *self* share (the leaf: where the CPU was spent) and *inclusive* share (the
function anywhere on the stack), and the share per top-level area (our packages, pipecat,
aiohttp, asyncio, ...), all as % of the busy samples: a thread waiting (an idle pool thread,
the event loop in ``select``) is counted apart as idle.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+?)(?::\d+)?\)$")
AREAS = (
    ("voiceagent/transports", "voiceagent.transports"),
    ("voiceagent/server", "voiceagent.server"),
    ("voiceagent/processors", "voiceagent.processors"),
    ("voiceagent/services", "voiceagent.services"),
    ("voiceagent/storage", "voiceagent.storage"),
    ("voiceagent/", "voiceagent (other)"),
    ("pipecat/audio", "pipecat.audio (VAD, filters)"),
    ("pipecat/services", "pipecat.services"),
    ("pipecat/", "pipecat (runtime)"),
    ("aiohttp/", "aiohttp"),
    ("websockets/", "websockets"),
    ("deepgram/", "deepgram sdk"),
    ("openai/", "openai sdk"),
    ("httpx", "httpx"),
    ("asyncio/", "asyncio"),
    ("loguru/", "loguru"),
    ("numpy/", "numpy"),
)
IDLE_LEAVES = frozenset(
    (
        "_worker (concurrent/futures/thread.py)",
        "EpollSelector.select (selectors.py)",
        "Condition.wait (threading.py)",
        "Event.wait (threading.py)",
    )
)


def _name(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return f"{match['func']} ({match['file']})", match["file"]


def _area(path: str) -> str:
    for needle, area in AREAS:
        if needle in path:
            return area
    return "other" if path else "native/idle"


def summarize(text: str) -> tuple[int, int, Counter, Counter, Counter]:
    """Busy and idle samples, self counts, inclusive counts and self counts per area."""
    total = idle = 0
    own: Counter = Counter()
    inclusive: Counter = Counter()
    areas: Counter = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_name(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        leaf, leaf_file = frames[-1]
        if leaf in IDLE_LEAVES:
            idle += n
            continue
        total += n
        own[leaf] += n
        areas[_area(leaf_file)] += n
        for name in {name for name, _ in frames}:
            inclusive[name] += n
    return total, idle, own, inclusive, areas


def report(text: str, top: int = 25) -> str:
    """The summary as text."""
    total, idle, own, inclusive, areas = summarize(text)
    if not total:
        return "no samples"
    out = [
        f"{total} busy samples, {idle} idle (py-spy record, 100 Hz, every thread)",
        "",
        "self share by area (leaf frame's file):",
    ]
    out += [f"  {100 * n / total:5.1f} %  {area}" for area, n in areas.most_common()]
    out += ["", f"top {top} functions by self share:"]
    out += [f"  {100 * n / total:5.1f} %  {name}" for name, n in own.most_common(top)]
    out += ["", f"top {top} functions by inclusive share:"]
    out += [f"  {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> int:
    """Print the summary of one profile file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(report(Path(args.profile).read_text(), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
