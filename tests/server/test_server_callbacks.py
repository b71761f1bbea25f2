"""POST /twilio/status and /twilio/amd: signed progress events recorded, bad ones refused."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from server_harness import Factory, TwilioLeg, metric_value, serving, settings_for
from twilio.request_validator import RequestValidator

from voiceagent.frames import AnsweredByFrame
from voiceagent.server.app import CALLBACKS_KEY
from voiceagent.telephony.callbacks import AmdCallback, StatusCallback

TOKEN = "callback-token"
HOST = "agent.example.com"
ACCOUNT = "AC" + "a" * 32
CALL_SID = "CA" + "b" * 32


@dataclass
class Sink:
    statuses: list[StatusCallback] = field(default_factory=list)
    answers: list[AmdCallback] = field(default_factory=list)

    def record_status(self, callback: StatusCallback) -> None:
        self.statuses.append(callback)

    def record_answered_by(self, callback: AmdCallback) -> None:
        self.answers.append(callback)


def progress(status: str, sequence: int, **extra: str) -> dict[str, str]:
    """A call progress callback's form, as Twilio posts it."""
    return {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "CallSid": CALL_SID,
        "CallStatus": status,
        "CallbackSource": "call-progress-events",
        "Called": "+15550100199",
        "Caller": "+15550100100",
        "Direction": "outbound-api",
        "From": "+15550100100",
        "To": "+15550100199",
        "SequenceNumber": str(sequence),
        "Timestamp": f"Fri, 04 Dec 2026 10:00:0{sequence} +0000",
        **extra,
    }


def signed(path: str, form: dict[str, str], token: str = TOKEN) -> dict[str, str]:
    """Headers of a request Twilio signed over ``https://HOST{path}`` and ``form``."""
    signature = RequestValidator(token).compute_signature(f"https://{HOST}{path}", form)
    return {"X-Twilio-Signature": signature}


def secured():
    return settings_for(twilio_auth_token=TOKEN, public_host=HOST)


async def test_signed_progress_events_are_recorded_with_their_timestamps(factory: Factory):
    sink = Sink()
    hook = lambda app: setattr(app[CALLBACKS_KEY], "sink", sink)  # noqa: E731
    async with serving(secured(), factory, app_hook=hook) as client:
        for n, status in enumerate(("initiated", "ringing", "in-progress")):
            form = progress(status, n)
            resp = await client.post(
                "/twilio/status", data=form, headers=signed("/twilio/status", form)
            )
            assert resp.status == 204
        done = progress("completed", 3, CallDuration="42", Duration="1")
        resp = await client.post(
            "/twilio/status", data=done, headers=signed("/twilio/status", done)
        )
        assert resp.status == 204
        assert [s.status for s in sink.statuses] == [
            "initiated",
            "ringing",
            "in-progress",
            "completed",
        ]
        assert [s.sequence for s in sink.statuses] == [0, 1, 2, 3]
        assert sink.statuses[0].at == 1796378400.0  # Fri, 04 Dec 2026 10:00:00 +0000
        assert sink.statuses[-1].duration_s == 42
        assert sink.statuses[0].direction == "outbound-api"
        assert (sink.statuses[0].from_number, sink.statuses[0].to_number) == (
            "+15550100100",
            "+15550100199",
        )
        ok = 'voiceagent_twilio_callbacks_total{kind="status",outcome="ok"}'
        assert await metric_value(client, ok) == 4
        ringing = 'voiceagent_call_status_callbacks_total{status="ringing"}'
        assert await metric_value(client, ringing) == 1


async def test_unsigned_and_forged_callbacks_get_403_and_are_counted(factory: Factory):
    sink = Sink()
    hook = lambda app: setattr(app[CALLBACKS_KEY], "sink", sink)  # noqa: E731
    async with serving(secured(), factory, app_hook=hook) as client:
        form = progress("ringing", 1)
        unsigned = await client.post("/twilio/status", data=form)
        assert unsigned.status == 403
        forged = await client.post(
            "/twilio/status", data=form, headers=signed("/twilio/status", form, "not-our-token")
        )
        assert forged.status == 403
        tampered = await client.post(
            "/twilio/status",
            data={**form, "CallStatus": "completed"},
            headers=signed("/twilio/status", form),
        )
        assert tampered.status == 403
        amd = {"CallSid": CALL_SID, "AccountSid": ACCOUNT, "AnsweredBy": "human"}
        assert (await client.post("/twilio/amd", data=amd)).status == 403
        assert not sink.statuses and not sink.answers
        refused = 'voiceagent_twilio_callbacks_total{kind="status",outcome="signature"}'
        assert await metric_value(client, refused) == 3
        refused_amd = 'voiceagent_twilio_callbacks_total{kind="amd",outcome="signature"}'
        assert await metric_value(client, refused_amd) == 1
        assert (
            await metric_value(client, 'voiceagent_requests_rejected_total{reason="signature"}')
            == 4
        )


async def test_signed_but_malformed_callbacks_get_400_and_are_counted(factory: Factory):
    sink = Sink()
    hook = lambda app: setattr(app[CALLBACKS_KEY], "sink", sink)  # noqa: E731
    bad_forms = [
        {k: v for k, v in progress("ringing", 1).items() if k != "CallSid"},  # no CallSid
        progress("ringing", 1, CallSid="CA123"),  # not a call sid
        progress("answered", 1),  # an event name, not a CallStatus
        progress("ringing", 1, Timestamp="yesterday"),
        progress("ringing", 1, SequenceNumber="-1"),
    ]
    async with serving(secured(), factory, app_hook=hook) as client:
        for form in bad_forms:
            resp = await client.post(
                "/twilio/status", data=form, headers=signed("/twilio/status", form)
            )
            assert resp.status == 400, form
            assert "malformed callback" in await resp.text()
        amd = {"CallSid": CALL_SID, "AccountSid": ACCOUNT, "AnsweredBy": "robot"}
        resp = await client.post("/twilio/amd", data=amd, headers=signed("/twilio/amd", amd))
        assert resp.status == 400
        json_body = await client.post(
            "/twilio/status", json=progress("ringing", 1), headers=signed("/twilio/status", {})
        )
        assert json_body.status == 400
        assert not sink.statuses and not sink.answers
        bad = 'voiceagent_twilio_callbacks_total{kind="status",outcome="malformed"}'
        assert await metric_value(client, bad) == len(bad_forms) + 1
        bad_amd = 'voiceagent_twilio_callbacks_total{kind="amd",outcome="malformed"}'
        assert await metric_value(client, bad_amd) == 1


async def test_amd_result_reaches_the_live_call_or_waits_for_its_stream():
    """The AMD callback is queued into the call's pipeline; before the stream starts it waits."""
    from pipecat.frames.frames import Frame
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

    seen: list[tuple[str, str]] = []

    class AmdTap(FrameProcessor):
        def __init__(self, call) -> None:
            super().__init__()
            self.call = call

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, AnsweredByFrame):
                seen.append((self.call.call_sid, frame.answered_by))
            await self.push_frame(frame, direction)

    async def factory(call, settings):
        return [AmdTap(call)]

    early_sid, live_sid = "CA" + "1" * 32, "CA" + "2" * 32
    async with serving(secured(), factory) as client:
        early = {"CallSid": early_sid, "AccountSid": ACCOUNT, "AnsweredBy": "machine_end_beep"}
        resp = await client.post("/twilio/amd", data=early, headers=signed("/twilio/amd", early))
        assert resp.status == 204  # no stream yet: kept for the call

        legs = []
        for sid in (early_sid, live_sid):
            url = f"wss://{HOST}/media"
            headers = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, {})}
            ws = await client.ws_connect(
                "/media", headers={**headers, "X-Forwarded-Proto": "https"}
            )
            leg = TwilioLeg(ws, sid, "+15550100199")
            await leg.connect_and_start()
            legs.append(leg)
        await leg.say(5)
        live = {
            "CallSid": live_sid,
            "AccountSid": ACCOUNT,
            "AnsweredBy": "human",
            "MachineDetectionDuration": "1800",
        }
        resp = await client.post("/twilio/amd", data=live, headers=signed("/twilio/amd", live))
        assert resp.status == 204
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(seen) == [(early_sid, "machine_end_beep"), (live_sid, "human")]
        human = 'voiceagent_amd_results_total{answered_by="human"}'
        assert await metric_value(client, human) == 1
        for leg in legs:
            await leg.stop()
            await leg.wait_closed()
