"""The Twilio side of a Media Streams call: a caller that speaks, listens and reports.

``CallerEmulator`` connects to a Media Streams WebSocket exactly as Twilio does (``connected``,
``start``, a 20 ms μ-law ``media`` message at real-time pace for the whole call, ``dtmf``,
mark echoes, ``stop``), plays the agent's audio through a Twilio-like buffer and reports what
the caller heard and how fast each reply came. The connected call itself:
:mod:`voiceagent.emulator.caller_stream`; its report: :mod:`voiceagent.emulator.report`.
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
from loguru import logger

from voiceagent.emulator.caller_stream import CallerStream, EventCallback
from voiceagent.emulator.conditions import LineCondition
from voiceagent.emulator.report import CallReport, TurnReport
from voiceagent.emulator.script import CallerLine, CallScript

__all__ = ["CallReport", "CallerEmulator", "EventCallback", "TurnReport"]

CONNECT_TIMEOUT_S = 10.0


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class CallerEmulator:
    """Calls a Media Streams endpoint the way Twilio would."""

    def __init__(
        self,
        url: str,
        *,
        custom_parameters: dict[str, str] | None = None,
        call_sid: str | None = None,
        stream_sid: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Describe the call.

        Args:
            url: the ``ws://`` or ``wss://`` Media Streams endpoint.
            custom_parameters: TwiML ``<Parameter>`` values, sent in ``start.customParameters``.
            call_sid: Twilio call SID (random ``CA…`` by default).
            stream_sid: Twilio stream SID (random ``MZ…`` by default).
            headers: extra HTTP headers for the upgrade request (e.g. X-Twilio-Signature).
        """
        self.url = url
        self.custom_parameters = dict(custom_parameters or {})
        self.call_sid = call_sid or _sid("CA")
        self.stream_sid = stream_sid or _sid("MZ")
        self.account_sid = _sid("AC")
        self.headers = dict(headers or {})
        self._call: CallerStream | None = None
        self._hang_up_early = False
        self._send_stop = True

    async def run(
        self,
        script: list[CallerLine],
        *,
        lead_in_s: float = 0.5,
        tail_s: float = 4.0,
        max_wait_reply_s: float = 15.0,
        on_event: EventCallback | None = None,
        wait_for_greeting: bool = True,
        greeting_wait_s: float = 0.0,
        condition: LineCondition | None = None,
    ) -> CallReport:
        """Place the call, follow the script, hang up and report.

        Args:
            script: the caller's lines in order.
            lead_in_s: silence before the first line (a greeting is let finish first).
            tail_s: time on the line after the last reply before hanging up.
            max_wait_reply_s: how long to wait for a reply to start before speaking again.
            on_event: live events: ``caller_line``, ``caller_line_end``, ``dtmf``, ``no_reply``,
                ``agent_audio_start``, ``agent_audio_end``, ``mark``, ``clear``, ``hangup``.
            wait_for_greeting: False: speak the first line after ``lead_in_s`` even over the
                agent (an answering machine).
            greeting_wait_s: wait this long for a greeting to start before the first line.
            condition: the phone line's noise, echo, level, losses and jitter (None: clean).

        Raises:
            RuntimeError: the WebSocket could not be opened.
        """
        plan = CallScript(
            script,
            lead_in_s=lead_in_s,
            tail_s=tail_s,
            max_wait_reply_s=max_wait_reply_s,
            wait_for_greeting=wait_for_greeting,
            greeting_wait_s=greeting_wait_s,
        )
        async with aiohttp.ClientSession() as session:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    ws = await session.ws_connect(self.url, headers=self.headers, autoping=True)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                logger.error(f"caller emulator: cannot connect to {self.url}: {e!r}")
                raise RuntimeError(f"cannot connect to {self.url}: {e}") from e
            logger.info(f"caller emulator: connected to {self.url} (stream {self.stream_sid})")
            self._call = CallerStream(self, ws, plan, on_event, condition)
            if self._hang_up_early:
                self._call.end_stream(send_stop=self._send_stop)
            try:
                return await self._call.run()
            finally:
                self._call = None

    def hang_up(self, *, send_stop: bool = True) -> None:
        """End the stream now, as Twilio does when the call hangs up or gets new TwiML.

        The script stops, ``stop`` is sent (unless ``send_stop`` is False: the connection just
        drops) and the socket closed; :meth:`run` returns its report.
        """
        self._hang_up_early = True
        self._send_stop = send_stop
        if self._call is not None:
            self._call.end_stream(send_stop=send_stop)
