"""``POST /twilio/status`` and ``POST /twilio/amd``: an outbound call's progress and AMD result.

Both are form posts signed with ``X-Twilio-Signature`` over the callback URL we gave Twilio
(checked like the voice webhook: the public URL rebuilt from ``PUBLIC_HOST`` / proxy headers).
Unsigned or wrongly signed: 403. Signed but malformed (no ``CallSid``, an unknown
``CallStatus``, a bad ``Timestamp``, …): 400. Both are logged once per request and counted in
``voiceagent_twilio_callbacks_total{kind, outcome}``. Accepted status events go to the
call's record (the sink); an AMD result also goes to the live call's pipeline as an
``AnsweredByFrame`` (kept for the call until its stream starts, if it has not yet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from aiohttp import web
from loguru import logger

from voiceagent.frames import AnsweredByFrame
from voiceagent.server.endpoint import ServerParts, TwilioEndpoint
from voiceagent.telephony.callbacks import (
    AMD_PATH,
    STATUS_PATH,
    AmdCallback,
    MalformedCallback,
    StatusCallback,
    parse_amd_callback,
    parse_status_callback,
)

_FORM = "application/x-www-form-urlencoded"
_Callback = TypeVar("_Callback", StatusCallback, AmdCallback)


class CallStatusSink(Protocol):
    """Where accepted callbacks are recorded (the call archive); must not block."""

    def record_status(self, callback: StatusCallback) -> None:
        """A call progress event."""

    def record_answered_by(self, callback: AmdCallback) -> None:
        """Twilio's AMD result."""


class TwilioCallbacks(TwilioEndpoint):
    """The two callback handlers, sharing the checks."""

    def __init__(self, parts: ServerParts, *, sink: CallStatusSink | None = None) -> None:
        """Handle callbacks for the server; accepted ones are recorded into ``sink`` (if any)."""
        super().__init__(parts)
        self.sink = sink

    async def _form(self, request: web.Request, kind: str) -> dict[str, str] | web.Response:
        """The signed form, or the 400/403 answer (logged and counted)."""
        if request.content_type != _FORM:
            return self._refuse(kind, "malformed", 400, f"content type {request.content_type!r}")
        try:
            posted = await request.post()
        except (ValueError, UnicodeDecodeError) as e:
            return self._refuse(kind, "malformed", 400, f"unreadable form: {e}")
        form = {k: v for k, v in posted.items() if isinstance(v, str)}
        if not self._signed(request, form, websocket=False):
            return self._refuse(kind, "signature", 403, "")
        return form

    async def _accepted(
        self, request: web.Request, kind: str, parse: Callable[[dict[str, str]], _Callback]
    ) -> _Callback | web.Response:
        """The signed form parsed (counted ``ok``), or the 400/403 answer (logged and counted)."""
        form = await self._form(request, kind)
        if isinstance(form, web.Response):
            return form
        try:
            callback = parse(form)
        except MalformedCallback as e:
            return self._refuse(kind, "malformed", 400, str(e))
        self._metrics.callback(kind, "ok")
        return callback

    def _refuse(self, kind: str, outcome: str, status: int, why: str) -> web.Response:
        self._metrics.callback(kind, outcome)
        if why:  # the signature check logs its own line
            logger.warning(f"rejected a Twilio {kind} callback ({status}): {why}")
        text = "invalid signature\n" if status == 403 else f"malformed callback: {why}\n"
        return web.Response(status=status, text=text)

    async def status(self, request: web.Request) -> web.Response:
        """A call progress event: record it."""
        event = await self._accepted(request, "status", parse_status_callback)
        if isinstance(event, web.Response):
            return event
        self._metrics.call_status(event.status)
        logger.info(
            f"call {event.call_sid}: {event.status}"
            + (f" (sequence {event.sequence})" if event.sequence is not None else "")
            + (f", {event.duration_s} s" if event.duration_s is not None else "")
        )
        if self.sink is not None:
            self.sink.record_status(event)
        return web.Response(status=204)

    async def amd(self, request: web.Request) -> web.Response:
        """Twilio's answering machine verdict: record it and tell the live call."""
        result = await self._accepted(request, "amd", parse_amd_callback)
        if isinstance(result, web.Response):
            return result
        self._metrics.answered(result.answered_by)
        live = await self._registry.deliver(
            result.call_sid, AnsweredByFrame(answered_by=result.answered_by)
        )
        logger.info(
            f"call {result.call_sid}: Twilio AMD says {result.answered_by}"
            + (f" after {result.detection_ms} ms" if result.detection_ms is not None else "")
            + ("" if live else " (kept until the call's stream starts)")
        )
        if self.sink is not None:
            self.sink.record_answered_by(result)
        return web.Response(status=204)


def add_callback_routes(app: web.Application, callbacks: TwilioCallbacks) -> None:
    """Register ``POST /twilio/status`` and ``POST /twilio/amd`` on ``app``."""
    app.router.add_post(STATUS_PATH, callbacks.status)
    app.router.add_post(AMD_PATH, callbacks.amd)
