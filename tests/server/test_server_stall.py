"""A server whose event loop stalls for 3 s keeps its calls; a real flood is still closed.

The caller runs in its own thread with its own event loop (as Twilio runs on its own
machines): while the server's loop is blocked, the caller keeps sending 50 messages a second,
which the server then reads all at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass, field

import aiohttp
import pytest
from server_harness import Factory, metric_value, serving, settings_for

pytestmark = pytest.mark.slow

ULAW_20MS = base64.b64encode(bytes([0x10]) * 160).decode()


@dataclass
class ThreadCaller:
    """A Twilio-like caller on its own thread: connected, start, media at 50/s, stop."""

    url: str
    seconds: float
    flood: bool = False
    close_code: int | None = None
    media_heard: int = 0
    sent: int = 0
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        try:
            asyncio.run(self._call())
        except Exception as e:  # reported to the test, which fails on it
            self.errors.append(repr(e))

    async def _call(self) -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(self.url)
            reader = asyncio.create_task(self._read(ws))
            sid = "MZ" + "5" * 32
            await ws.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
            start = {
                "streamSid": sid,
                "callSid": "CA" + "5" * 32,
                "accountSid": "AC" + "0" * 32,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            }
            seq = 1
            await ws.send_str(
                json.dumps({"event": "start", "sequenceNumber": "1", **_sid(sid), "start": start})
            )
            t0 = time.monotonic()
            for chunk in range(int(self.seconds / 0.02)):
                if not self.flood:
                    await asyncio.sleep(max(0.0, t0 + chunk * 0.02 - time.monotonic()))
                if ws.closed:
                    break
                seq += 1
                media = {
                    "chunk": str(chunk + 1),
                    "timestamp": str(chunk * 20),
                    "payload": ULAW_20MS,
                }
                try:
                    await ws.send_str(
                        json.dumps(
                            {
                                "event": "media",
                                "sequenceNumber": str(seq),
                                **_sid(sid),
                                "media": media,
                            }
                        )
                    )
                except ConnectionError:
                    break
                self.sent += 1
            if not ws.closed:
                await ws.send_str(json.dumps({"event": "stop", **_sid(sid), "stop": {}}))
            await asyncio.wait_for(reader, 10.0)
            await ws.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.media_heard += json.loads(msg.data).get("event") == "media"
            elif msg.type is aiohttp.WSMsgType.CLOSE:
                self.close_code = msg.data
                return
            else:
                return


def _sid(sid: str) -> dict[str, str]:
    return {"streamSid": sid}


async def test_a_three_second_stall_keeps_the_call_and_a_real_flood_is_still_closed(
    factory: Factory,
) -> None:
    async with serving(settings_for(max_messages_per_s=200), factory) as client:
        url = str(client.make_url("/media")).replace("http", "ws")
        caller = ThreadCaller(url, seconds=7.0)
        line = threading.Thread(target=caller.run)
        line.start()
        await asyncio.sleep(2.0)
        time.sleep(3.0)  # the server's event loop is blocked: ~150 messages pile up
        while line.is_alive():
            await asyncio.sleep(0.1)
        assert caller.errors == []
        assert caller.close_code == 1000  # closed after our stop, not for abuse (1008)
        assert await metric_value(client, 'voiceagent_protocol_errors_total{kind="flood"}') == 0
        assert caller.sent == 350 and caller.media_heard > 150  # the echo went on after the stall

        flooder = ThreadCaller(url, seconds=10.0, flood=True)  # 500 messages, no pause
        line = threading.Thread(target=flooder.run)
        line.start()
        while line.is_alive():
            await asyncio.sleep(0.1)
        assert flooder.close_code == 1008
        assert await metric_value(client, 'voiceagent_protocol_errors_total{kind="flood"}') > 50
