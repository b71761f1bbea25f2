"""A protocol-faithful fake of Twilio's voice REST API and callbacks, on 127.0.0.1 (tests only).

REST, as Twilio answers it (``/2010-04-01/Accounts/{AccountSid}/…``, HTTP basic auth with the
account sid and auth token, form bodies, JSON resources and JSON errors
``{"code", "message", "more_info", "status"}``):

- ``POST Calls.json``: ``To``/``From``/``Twiml`` (or ``Url``), ``StatusCallback``,
  ``StatusCallbackEvent``, ``Timeout``, ``MachineDetection``, ``AsyncAmd``,
  ``AsyncAmdStatusCallback`` → 201 with the call (``queued``). Errors: 401/20003 (credentials),
  400/21201, 21603, 21205 (missing To/From/TwiML), 21211 (bad ``To``), 21210 (a ``From``
  that is not the account's number), 429/20429 (``rate_limited``).
- ``POST Calls/{CallSid}.json``: ``Twiml`` (a ``<Dial>`` transfers: the stream ends, the call
  goes on with the person) or ``Status=completed``/``canceled``. 404/20404 for an unknown call,
  400/21220 when it is over.
- ``GET Calls/{CallSid}.json``.

Each call then lives like a real one: ``initiated`` → ``ringing`` → busy / no-answer / failed /
answered. Answered, the TwiML's ``<Connect><Stream url>`` is opened by the caller emulator
(playing the callee's script, with the ``<Parameter>``s as ``customParameters`` and the
upgrade signed); the AMD result is posted when asked for; ``completed`` with ``CallDuration``
when the callee hangs up or the stream is closed. Callbacks are form posts signed with
``X-Twilio-Signature`` over the URL we were given (``https``/``wss`` URLs are reached over
plain HTTP on loopback, as behind a TLS-terminating proxy).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.loopback import start_loopback
from voiceagent.emulator.caller import CallerEmulator, CallReport
from voiceagent.emulator.script import CallerLine

API = "/2010-04-01/Accounts/{account}"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SIP = re.compile(r"^sips?:[^@\s]+@[^\s]+$")
_EVENT_OF = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}
TERMINAL = ("completed", "busy", "no-answer", "failed", "canceled")


@dataclass
class Callee:
    """How the called number behaves."""

    answer: str = "person"  # person | machine | busy | no-answer | failed
    script: list[CallerLine] = field(default_factory=list)
    ring_s: float = 0.2
    lead_in_s: float = 0.5
    tail_s: float = 1.0
    max_wait_reply_s: float = 10.0
    wait_for_greeting: bool = True
    answered_by: str = "human"  # what Twilio's AMD would say
    amd_delay_s: float = 0.3
    transferred_talk_s: float = 0.3  # how long the caller talks with the person after a transfer
    drop_stream_after_s: float | None = None  # the media connection drops (no ``stop``) then


@dataclass
class FakeCall:
    """One call the fake placed, and everything that happened to it."""

    sid: str
    to: str
    from_: str
    params: dict[str, Any]
    status: str = "queued"
    created: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    sequence: int = 0
    posted: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    updates: list[dict[str, str]] = field(default_factory=list)
    emulator: CallerEmulator | None = None
    report: CallReport | None = None
    transferred_to: str | None = None
    hung_up_by_api: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def statuses(self) -> list[str]:
        """The CallStatus of each status callback posted, in order."""
        return [form["CallStatus"] for url, form, _ in self.posted if "CallStatus" in form]

    def resource(self, account: str) -> dict[str, Any]:
        """The call as Twilio's REST API returns it."""
        duration = None
        if self.ended_at and self.answered_at:
            duration = str(round(self.ended_at - self.answered_at))
        elif self.status in TERMINAL:
            duration = "0"
        return {
            "sid": self.sid,
            "account_sid": account,
            "api_version": "2010-04-01",
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "status": self.status,
            "direction": "outbound-api",
            "answered_by": None,
            "date_created": formatdate(self.created, usegmt=True),
            "date_updated": formatdate(usegmt=True),
            "start_time": formatdate(self.answered_at, usegmt=True) if self.answered_at else None,
            "end_time": formatdate(self.ended_at, usegmt=True) if self.ended_at else None,
            "duration": duration,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "uri": f"/2010-04-01/Accounts/{account}/Calls/{self.sid}.json",
        }


def twilio_error(status: int, code: int, message: str) -> web.Response:
    """An error the way Twilio's REST API sends it."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)


def loopback_url(url: str) -> str:
    """Where a public ``https``/``wss`` URL is reached on loopback (plain, as behind TLS)."""
    for secure, plain in (("https://", "http://"), ("wss://", "ws://")):
        if url.startswith(secure):
            return plain + url[len(secure) :]
    return url


class FakeTwilio:
    """``async with FakeTwilio(...) as twilio:`` — Twilio's voice API and call progress."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        numbers: tuple[str, ...] = ("+15550100100",),
        callees: dict[str, Callee] | None = None,
        signing_token: str | None = None,
        default_callee: Callee | None = None,
        on_event: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        """Create the fake.

        Args:
            account_sid: The only account it knows.
            auth_token: That account's token (basic auth, and signing callbacks).
            numbers: The account's phone numbers (allowed as ``From``).
            callees: How each ``To`` answers (default: a person with no script).
            signing_token: Sign callbacks and stream upgrades with this token instead (a
                misconfigured server sees bad signatures).
            default_callee: How numbers not in ``callees`` answer (a silent person).
            on_event: Told ``(call sid, kind, data)`` of each callback posted (``callback``)
                and each event of the callee's emulator (``caller_line``, ``agent_audio_start``…).
        """
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers = numbers
        self.callees = dict(callees or {})
        self.default_callee = default_callee or Callee()
        self.on_event = on_event
        self.signing_token = signing_token or auth_token
        self.rate_limited = False
        self.calls: dict[str, FakeCall] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeTwilio:
        app = web.Application()
        app.router.add_post(API + "/Calls.json", self._create)
        app.router.add_post(API + "/Calls/{sid}", self._update)
        app.router.add_get(API + "/Calls/{sid}", self._fetch)
        if self.port:  # a fixed port (the command-line fake)
            self._runner = web.AppRunner(app, handle_signals=False)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        else:
            self._runner, self.port = await start_loopback(app)
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for call in self.calls.values():
            if call.emulator is not None:
                call.emulator.hang_up()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for task in self._tasks:
            task.cancel()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def finished(self, sid: str, timeout: float = 30.0) -> FakeCall:
        """Wait until call ``sid`` is over and its last callback was posted."""
        call = self.calls[sid]
        await asyncio.wait_for(call.done.wait(), timeout)
        return call

    # ------------------------------------------------------------------ REST

    def _authorized(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        user = password = ""
        if header.startswith("Basic "):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        account = request.match_info["account"]
        if user != self.account_sid or password != self.auth_token or account != user:
            return twilio_error(401, 20003, "Authenticate")
        return None

    async def _form(self, request: web.Request) -> dict[str, Any]:
        posted = await request.post()
        form: dict[str, Any] = {k: v for k, v in posted.items() if isinstance(v, str)}
        events = [e for v in posted.getall("StatusCallbackEvent", []) for e in str(v).split()]
        if events:
            form["StatusCallbackEvent"] = events
        self.requests.append((request.method, request.path, form))
        return form

    async def _admitted(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The posted form, or Twilio's refusal: bad credentials (401) or rate limited (429)."""
        form = await self._form(request)
        refused = self._authorized(request)
        if refused is not None:
            return refused
        if self.rate_limited:
            return twilio_error(429, 20429, "Too Many Requests")
        return form

    async def _create(self, request: web.Request) -> web.Response:
        form = await self._admitted(request)
        if isinstance(form, web.Response):
            return form
        to, from_ = form.get("To", ""), form.get("From", "")
        if not to:
            return twilio_error(400, 21201, "No 'To' number is specified")
        if not from_:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not (form.get("Twiml") or form.get("Url") or form.get("ApplicationSid")):
            return twilio_error(400, 21205, "Url parameter is required.")
        if not (_E164.match(to) or _SIP.match(to)):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if from_ not in self.numbers:
            return twilio_error(
                400,
                21210,
                f"The source phone number provided, {from_}, is not yet verified for your "
                "account. You may only make calls from phone numbers that you've verified or "
                "purchased from Twilio.",
            )
        call = FakeCall(sid="CA" + uuid.uuid4().hex, to=to, from_=from_, params=form)
        self.calls[call.sid] = call
        self._spawn(self._live(call))
        return web.json_response(call.resource(self.account_sid), status=201)

    def _call(self, request: web.Request) -> FakeCall | web.Response:
        sid = request.match_info["sid"].removesuffix(".json")
        call = self.calls.get(sid)
        if call is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return call

    async def _fetch(self, request: web.Request) -> web.Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        call = self._call(request)
        if isinstance(call, web.Response):
            return call
        return web.json_response(call.resource(self.account_sid))

    async def _update(self, request: web.Request) -> web.Response:
        form = await self._admitted(request)
        if isinstance(form, web.Response):
            return form
        call = self._call(request)
        if isinstance(call, web.Response):
            return call
        if call.status in TERMINAL:
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        call.updates.append(dict(form))
        if form.get("Status") in ("completed", "canceled"):
            call.hung_up_by_api = True
            if call.emulator is not None:
                call.emulator.hang_up()
            elif call.status in ("queued", "initiated", "ringing"):
                call.status = "canceled"
        elif form.get("Twiml"):
            try:
                target = _dial_target(form["Twiml"])
            except ET.ParseError:
                return twilio_error(400, 12100, "Document parse failure")
            if target is not None:
                call.transferred_to = target
                if call.emulator is not None:
                    call.emulator.hang_up()  # the <Connect><Stream> ends; <Dial> runs next
        return web.json_response(call.resource(self.account_sid))

    # -------------------------------------------------------------- call life

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _live(self, call: FakeCall) -> None:
        callee = self.callees.get(call.to, self.default_callee)
        try:
            await self._progress(call, "initiated")
            await asyncio.sleep(callee.ring_s / 2)
            if call.status == "canceled":
                return await self._progress(call, "canceled")
            await self._progress(call, "ringing")
            await asyncio.sleep(callee.ring_s / 2)
            if call.status == "canceled":
                return await self._progress(call, "canceled")
            if callee.answer in ("busy", "no-answer", "failed"):
                return await self._progress(call, callee.answer, duration=0)
            call.answered_at = time.time()
            await self._progress(call, "in-progress")
            await self._connect(call, callee)
            if call.transferred_to is not None:
                await asyncio.sleep(callee.transferred_talk_s)  # the caller talks to the person
            call.ended_at = time.time()
            await self._progress(
                call, "completed", duration=round(call.ended_at - call.answered_at)
            )
        finally:
            call.done.set()

    async def _connect(self, call: FakeCall, callee: Callee) -> None:
        """Run the TwiML: ``<Connect><Stream>`` opens the media stream (the emulator)."""
        stream = ET.fromstring(call.params.get("Twiml", "<Response/>")).find("Connect/Stream")
        if stream is None or not stream.get("url"):
            return
        url = stream.get("url", "")
        parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        signature = RequestValidator(self.signing_token).compute_signature(url, {})
        call.emulator = CallerEmulator(
            loopback_url(url),
            custom_parameters=parameters,
            call_sid=call.sid,
            headers={"X-Twilio-Signature": signature},
        )
        amd = call.params.get("MachineDetection") and call.params.get("AsyncAmd") == "true"
        if amd:
            self._spawn(self._post_amd(call, callee))
        if callee.drop_stream_after_s is not None:
            emulator = call.emulator
            loop = asyncio.get_running_loop()
            loop.call_later(callee.drop_stream_after_s, lambda: emulator.hang_up(send_stop=False))
        # A refused stream (e.g. a bad signature) raises RuntimeError: Twilio hangs up.
        with contextlib.suppress(RuntimeError):
            call.report = await call.emulator.run(
                callee.script,
                lead_in_s=callee.lead_in_s,
                tail_s=callee.tail_s,
                max_wait_reply_s=callee.max_wait_reply_s,
                wait_for_greeting=callee.wait_for_greeting,
                on_event=self._emulator_events(call.sid),
            )

    def _emulator_events(self, sid: str) -> Callable[[str, dict], None] | None:
        on_event = self.on_event
        if on_event is None:
            return None
        return lambda kind, data: on_event(sid, kind, data)

    async def _post_amd(self, call: FakeCall, callee: Callee) -> None:
        await asyncio.sleep(callee.amd_delay_s)
        url = call.params.get("AsyncAmdStatusCallback")
        if url and call.status == "in-progress":
            form = {
                "AccountSid": self.account_sid,
                "CallSid": call.sid,
                "AnsweredBy": callee.answered_by,
                "MachineDetectionDuration": str(round(callee.amd_delay_s * 1000)),
            }
            await self._post(call, url, form)

    async def _progress(self, call: FakeCall, status: str, *, duration: int | None = None) -> None:
        """The call reaches ``status``: post the callback if the call asked for its event."""
        call.status = status
        url = call.params.get("StatusCallback")
        event = "completed" if status in TERMINAL else _EVENT_OF.get(status)
        wanted = call.params.get("StatusCallbackEvent") or ["completed"]
        if not url or event not in wanted:
            return
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": status,
            "CallbackSource": "call-progress-events",
            "Called": call.to,
            "Caller": call.from_,
            "Direction": "outbound-api",
            "From": call.from_,
            "To": call.to,
            "SequenceNumber": str(call.sequence),
            "Timestamp": formatdate(usegmt=False),
        }
        if duration is not None:
            form["CallDuration"] = form["Duration"] = str(duration)
        call.sequence += 1
        await self._post(call, url, form)

    async def _post(self, call: FakeCall, url: str, form: dict[str, str]) -> None:
        assert self._session is not None
        signature = RequestValidator(self.signing_token).compute_signature(url, form)
        try:
            async with self._session.post(
                loopback_url(url), data=form, headers={"X-Twilio-Signature": signature}
            ) as response:
                call.posted.append((url, form, response.status))
        except aiohttp.ClientError:
            call.posted.append((url, form, 0))
        if self.on_event is not None:
            self.on_event(
                call.sid, "callback", {"url": url, "form": form, "status": call.posted[-1][2]}
            )


def _dial_target(twiml: str) -> str | None:
    """The number or SIP URI a ``<Dial>`` in ``twiml`` rings, if any."""
    dial = ET.fromstring(twiml).find("Dial")
    if dial is None:
        return None
    for child in ("Number", "Sip"):
        node = dial.find(child)
        if node is not None and node.text:
            return node.text.strip()
    return (dial.text or "").strip() or None
