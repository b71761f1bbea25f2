"""``voiceagent demo --browser``: the offline agent on this machine, and you on the softphone page.

Loads the offline stack, serves on loopback (no signatures, no signed links: nothing leaves
this machine), prints the page's URL and opens it in the default browser when there is one.
Runs until Ctrl-C; every call is recorded like any other (``voiceagent calls``).
"""

from __future__ import annotations

import asyncio
import time
import webbrowser
from typing import Any


async def run_browser_demo(args: Any, *, opener=webbrowser.open) -> int:
    """Serve the agent and its softphone page until interrupted; 0 on a clean stop."""
    from voiceagent.demo import demo_bot
    from voiceagent.server.in_process import loopback_settings, serve_in_process

    settings = loopback_settings(port=getattr(args, "port", 0))
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - t0:5.1f}s] {msg}", flush=True)

    def on_transcript(who: str, text: str, info: dict) -> None:
        if who == "caller":
            print(f"    caller (as transcribed): {text}", flush=True)
        else:
            cut = " [interrupted]" if info.get("interrupted") else ""
            print(f"    agent  (as heard):       {text}{cut}", flush=True)

    bot = demo_bot(args, settings, on_transcript)
    progress("loading the agent's models (first run assembles weights; later runs are quick)")
    await bot.start(progress=progress)
    try:
        async with serve_in_process(settings, bot) as url:
            page = url.replace("ws://", "http://").removesuffix("/media") + "/phone"
            progress(f"softphone: {page}  (press Call, allow the microphone; Ctrl-C to stop)")
            try:
                opened = opener(page)
            except Exception:  # noqa: BLE001 (no browser here: the URL is printed)
                opened = False
            if not opened:
                progress("no browser could be opened here: open the URL above yourself")
            await asyncio.Event().wait()  # until Ctrl-C / cancellation
    except asyncio.CancelledError:
        pass
    finally:
        await bot.stop()
    return 0
