"""Make docs/softphone.png: the softphone page during a real call on the offline stack.

The agent runs on this machine (Whisper tiny.en, Qwen2.5-Coder-0.5B on llama.cpp, Piper); the caller
is Chromium's fake microphone playing two espeak-ng lines, the second spoken over the agent's
answer (a barge-in). Needs the offline stack, Debian's chromium and espeak-ng (scripts/setup.sh).

    .venv/bin/python scripts/softphone_screenshot.py [docs/softphone.png] [--narrowband]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.web.softphone_browser import chromium, silence, spoken, write_microphone  # noqa: E402
from voiceagent.pipelines.receptionist import ReceptionistBot  # noqa: E402
from voiceagent.server.in_process import serve_in_process  # noqa: E402
from voiceagent.settings import Settings  # noqa: E402

QUESTION = "Hi, do you have anything open next Tuesday afternoon?"
BARGE_IN = "Sorry, actually, how much does a cleaning cost?"
HEARD = "document.querySelectorAll('#transcript li.agent[data-state=heard]').length"


async def main(out: Path, wideband: bool) -> int:
    """Place the call, screenshot the page once both lines were answered."""
    folder = Path(tempfile.mkdtemp(prefix="softphone-shot-"))
    microphone = write_microphone(
        folder / "caller.wav",
        silence(6.0),
        spoken(QUESTION, folder),
        silence(3.0),
        spoken(BARGE_IN, folder),
        silence(14.0),
    )
    settings = Settings.from_env(
        server={"host": "127.0.0.1", "port": 0, "twilio_auth_token": None},
        storage={"dir": str(folder / "calls")},
    )
    bot = ReceptionistBot(settings)
    await bot.start(progress=print)
    try:
        async with serve_in_process(settings, bot) as url:
            page_url = url.replace("ws://", "http://").removesuffix("/media") + "/phone"
            async with chromium(folder, microphone=microphone) as page:
                await page.goto(page_url)
                if wideband:
                    await page.check("input[value=pcm16-16k]")
                await page.click("#call")
                for _ in range(45):
                    await asyncio.sleep(1.0)
                    commits = await page.evaluate("softphone.stats.events.committed || 0")
                    if commits >= 2 and await page.evaluate(HEARD) >= 3:
                        break
                await asyncio.sleep(0.5)
                await page.screenshot(path=str(out))
                print(await page.inner_text("#transcript"))
                await page.click("#hangup")
    finally:
        await bot.stop()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    target = Path(args[0] if args else "docs/softphone.png")
    sys.exit(asyncio.run(main(target, wideband="--narrowband" not in sys.argv)))
