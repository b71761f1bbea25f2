"""Past capacity a new call gets the busy answer; the calls already up keep talking.

The admission decisions are tested on a ManualClock; the server tests check what Twilio and a
load balancer see: busy TwiML at the webhook, close 1013 on a new stream, 503 on /healthz.
"""

from __future__ import annotations

from server_harness import Factory, TwilioLeg, eventually, metric_value, serving, settings_for

from voiceagent.clock import ManualClock
from voiceagent.server.admission import Admission
from voiceagent.server.loop_lag import LoopLag
from voiceagent.settings import ServerSettings

SPEECH = 10
WEBHOOK = {"CallSid": "CA" + "7" * 32, "From": "+15550001", "To": "+15550199"}


class Desk:
    """An admission over a made-up count of active calls."""

    def __init__(self, max_calls: int = 2, **settings) -> None:
        self.active = 0
        self.clock = ManualClock()
        self.lag = LoopLag(clock=self.clock)
        self.admission = Admission(
            ServerSettings(max_calls=max_calls, **settings),
            lambda: self.active,
            self.lag,
            clock=self.clock,
        )


def test_webhooks_reserve_slots_and_the_third_call_is_refused() -> None:
    desk = Desk(max_calls=2)
    assert desk.admission.admit_webhook() is None
    assert desk.admission.admit_webhook() is None
    assert desk.admission.admit_webhook() == "full"  # two streams are on their way
    assert desk.admission.load().reserved == 2


def test_a_stream_takes_its_reservation_and_unused_ones_expire() -> None:
    desk = Desk(max_calls=2)
    desk.admission.admit_webhook()
    desk.admission.admit_webhook()
    assert desk.admission.admit_stream() is None  # the first call's stream arrives
    desk.active = 1
    desk.clock.advance(10.0)  # the second caller hung up before its stream opened
    assert desk.admission.load().reserved == 0
    assert desk.admission.admit_webhook() is None


def test_a_stream_with_a_reservation_is_admitted_even_while_the_loop_is_slow() -> None:
    desk = Desk(max_calls=2, max_loop_lag_ms=250)
    desk.admission.admit_webhook()
    desk.lag.record(desk.clock.now(), 0.4)  # the worker fell behind meanwhile
    assert desk.admission.admit_stream() is None
    assert desk.admission.admit_stream() == "slow"  # a stream nobody announced


def test_a_slow_loop_refuses_new_calls_until_it_catches_up() -> None:
    desk = Desk(max_calls=10, max_loop_lag_ms=250)
    desk.lag.record(desk.clock.now(), 0.3)
    assert desk.admission.admit_webhook() == "slow"
    desk.clock.advance(1.0)
    desk.lag.record(desk.clock.now(), 0.05)
    assert desk.admission.refusing() == "slow"  # still within the 2 s window
    desk.clock.advance(1.5)
    assert desk.admission.refusing() is None
    assert desk.lag.worst_s == 0.3


def test_the_lag_window_keeps_the_worst_recent_measurement() -> None:
    clock = ManualClock()
    lag = LoopLag(window_s=2.0, clock=clock)
    for late in (0.01, 0.2, 0.05, 0.02):
        lag.record(clock.now(), late)
        clock.advance(0.5)
    assert lag.lag_s() == 0.2
    clock.advance(0.6)  # the 0.2 s lag is 2.1 s old now
    assert lag.lag_s() == 0.05


def test_the_busy_answer_says_a_message_and_hangs_up_or_rejects() -> None:
    say = Desk(busy_message="All lines are busy.").admission.busy_twiml()
    assert "<Say>All lines are busy.</Say><Hangup />" in say
    reject = Desk(busy_answer="reject").admission.busy_twiml()
    assert '<Reject reason="busy" />' in reject


async def _leg(client, n: int) -> TwilioLeg:
    leg = TwilioLeg(await client.ws_connect("/media"), f"CA{n:032d}", f"+1555000{n}")
    await leg.connect_and_start()
    return leg


async def test_past_capacity_new_calls_are_turned_away_and_the_call_up_keeps_talking(
    factory: Factory,
) -> None:
    async with serving(settings_for(max_calls=1), factory) as client:
        first = await _leg(client, 1)
        await first.say(SPEECH)
        assert await first.hear_media(5) >= 5

        webhook = await client.post("/twiml", data=WEBHOOK)
        assert webhook.status == 200
        twiml = await webhook.text()
        assert "<Say>" in twiml and "<Hangup />" in twiml and "<Connect>" not in twiml

        second = TwilioLeg(await client.ws_connect("/media"), "CA" + "2" * 32, "+15550002")
        assert await second.wait_closed() == 1013

        health = await client.get("/healthz")
        body = await health.json()
        assert health.status == 503
        assert (body["status"], body["active_calls"], body["max_calls"]) == ("busy", 1, 1)
        assert body["refusing"] == "full" and "loop_lag_ms" in body

        await first.say(SPEECH)
        assert await first.hear_media(10) >= 10  # untouched by the refusals
        assert (
            await metric_value(client, 'voiceagent_requests_rejected_total{reason="busy_full"}')
            == 2
        )
        assert await metric_value(client, "voiceagent_refusing_calls") == 1
        await first.stop()
        assert await first.wait_closed() == 1000

        async def room_again() -> bool:
            return (await client.get("/healthz")).status == 200

        assert await eventually(room_again)
        webhook = await client.post("/twiml", data=WEBHOOK)
        assert "<Connect>" in await webhook.text()


async def test_busy_answer_reject_is_a_busy_signal(factory: Factory) -> None:
    async with serving(settings_for(max_calls=1, busy_answer="reject"), factory) as client:
        first = await _leg(client, 1)
        webhook = await client.post("/twiml", data=WEBHOOK)
        assert '<Reject reason="busy" />' in await webhook.text()
        await first.stop()
        assert await first.wait_closed() == 1000
