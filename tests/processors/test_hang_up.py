"""The agent hangs up after its goodbye played: fence through TwilioOutput, barge-in, timeout.

``CallHangUp → Probe → TwilioOutput`` in a real pipeline on a ManualClock; the Twilio side
plays sent audio in real (clock) time and echoes marks once played (tests/transports rig).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pipecat.frames.frames import EndWorkerFrame, Frame, InterruptionFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.workers.runner import WorkerRunner

from tests.transports.conftest import Probe, TwilioPlayback, TwilioScript, Wire
from tests.transports.test_twilio_output import speech
from voiceagent.clock import ManualClock
from voiceagent.frames import CallEndReasonFrame, PlaybackFenceReachedFrame
from voiceagent.processors.hang_up import CallHangUp
from voiceagent.transports.twilio.call import TwilioCall
from voiceagent.transports.twilio.rest import TwilioRestClient

GOODBYE = [("Thanks for calling.", 600), ("Goodbye!", 400)]


class HangUpRig:
    """serializer → Probe → CallHangUp → Probe → TwilioOutput, on a ManualClock."""

    def __init__(self, *, max_wait_s: float = 20.0, rest: TwilioRestClient | None = None):
        self.clock = ManualClock()
        self.wire = Wire(self.clock)
        self.twilio = TwilioScript()
        self.playback = TwilioPlayback(self.wire)
        self.call = TwilioCall(self.wire.send, clock=self.clock)
        self.hang_up = CallHangUp(rest=rest, clock=self.clock, max_wait_s=max_wait_s)
        self.head = Probe()  # sees what the hang-up pushes upstream
        self.probe = Probe()  # sees what the output pushes upstream
        chain = [self.call.serializer, self.head, self.hang_up, self.probe, self.call.output]
        self.worker = PipelineWorker(Pipeline(chain), cancel_on_idle_timeout=False)
        self.run: asyncio.Task | None = None

    async def __aenter__(self) -> HangUpRig:
        started = asyncio.Event()

        @self.worker.event_handler("on_pipeline_started")
        async def _started(worker: Any, frame: Frame) -> None:
            started.set()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        self.run = asyncio.create_task(runner.run())
        await asyncio.wait_for(started.wait(), 5)
        await self.call.feed_text(self.twilio.connected())
        await self.call.feed_text(self.twilio.start())
        await self.settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.run is not None
        if not self.run.done():
            await self.worker.cancel()
            await asyncio.wait_for(self.run, 5)

    async def settle(self, rounds: int = 30) -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def queue(self, *frames: Frame) -> None:
        for frame in frames:
            await self.worker.queue_frame(frame)
        await self.settle()

    async def advance(self, seconds: float, step: float = 0.01) -> None:
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            await self.settle(5)
            for name in self.playback.due(self.clock.now()):
                self.playback.echoed.add(name)
                await self.call.feed_text(self.twilio.mark(name))
        await self.settle()

    def ended(self) -> bool:
        return bool(self.head.upstream(EndWorkerFrame))


async def test_the_call_ends_only_once_the_goodbye_has_played():
    async with HangUpRig() as rig:
        await rig.queue(*speech(GOODBYE))
        assert await rig.hang_up.request("caller is done")
        await rig.advance(0.9)
        assert not rig.ended() and rig.hang_up.pending  # "Goodbye!" is still playing

        await rig.advance(0.3)
        assert rig.ended()
        assert rig.playback.echoed == set(rig.wire.marks())  # every mark came back first
        assert rig.probe.upstream(PlaybackFenceReachedFrame)
        assert rig.hang_up.stats.hung_up and not rig.hang_up.stats.waited_out
        await asyncio.wait_for(rig.run, 5)  # EndWorkerFrame ended the pipeline


async def test_with_nothing_to_say_the_call_ends_at_once():
    async with HangUpRig() as rig:
        await rig.hang_up.request("silent caller")
        await rig.settle()
        assert rig.ended()
        assert not await rig.hang_up.request("again")  # already ending


async def test_a_barge_in_over_the_goodbye_withdraws_the_hang_up():
    async with HangUpRig() as rig:
        await rig.queue(*speech(GOODBYE))
        await rig.hang_up.request("caller is done")
        await rig.advance(0.3)
        await rig.queue(InterruptionFrame())  # "wait, one more thing"
        await rig.advance(2.0)
        assert not rig.ended() and not rig.hang_up.pending
        assert rig.hang_up.stats.withdrawn == 1
        assert await rig.hang_up.request("now really done")  # a later goodbye may end it
        await rig.advance(0.1)
        assert rig.ended()


async def test_a_goodbye_that_never_finishes_is_waited_out():
    async with HangUpRig(max_wait_s=3.0) as rig:
        await rig.queue(*speech(GOODBYE, stopped=False))  # the TTS never closes its turn
        await rig.hang_up.request("caller is done")
        await rig.advance(2.9)
        assert not rig.ended()
        await rig.advance(0.2)
        assert rig.ended() and rig.hang_up.stats.waited_out


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_an_unreachable_twilio_api_is_counted_and_the_call_still_ends():
    rest = TwilioRestClient(
        "AC" + "1" * 32, "token", base_url=f"http://127.0.0.1:{_closed_port()}", timeout_s=2.0
    )
    async with HangUpRig(rest=rest) as rig:
        await rig.hang_up.request("done")
        for _ in range(200):
            if rig.ended():
                break
            await asyncio.sleep(0.01)
        assert rig.ended() and rig.hang_up.stats.rest_ok is False
        assert rest.stats.failures_by_kind == {"network": 1}


async def test_rest_client_refuses_to_hang_up_without_a_call_sid():
    rest = TwilioRestClient("AC1", "token", base_url="http://127.0.0.1:9")
    assert await rest.hang_up("") is False
    assert rest.stats.failures_by_kind == {"no_call_sid": 1}


def test_rest_credentials_come_from_the_environment():
    from voiceagent.settings import Settings

    assert TwilioRestClient.from_settings(Settings.from_env({})) is None
    only_token = Settings.from_env({"TWILIO_AUTH_TOKEN": "t"})
    assert TwilioRestClient.from_settings(only_token) is None
    settings = Settings.from_env(
        {
            "TWILIO_AUTH_TOKEN": "t",
            "TWILIO_ACCOUNT_SID": "AC9",
            "VOICEAGENT_TWILIO__API_BASE_URL": "http://127.0.0.1:1/",
        }
    )
    client = TwilioRestClient.from_settings(settings)
    assert client is not None
    assert (client.account_sid, client.base_url) == ("AC9", "http://127.0.0.1:1")


async def test_a_hand_over_runs_its_action_after_the_words_instead_of_hanging_up():
    done: list[str] = []

    async def transfer(call_sid: str) -> bool:
        done.append(call_sid)
        return True

    async with HangUpRig() as rig:
        await rig.queue(*speech(GOODBYE))
        await rig.hang_up.request("to the front desk", end_reason="transferred", action=transfer)
        await rig.advance(0.9)
        assert not done  # the hand-off sentence is still playing
        await rig.advance(0.3)
        assert done == [rig.hang_up.call_sid] and rig.ended()
        reasons = [f.reason for f in rig.probe.downstream(CallEndReasonFrame)]
        assert reasons == ["transferred"]  # declared before Twilio was asked
        assert rig.hang_up.stats.end_reason == "transferred"


async def test_a_failed_or_broken_action_withdraws_the_reason_and_the_call_goes_on():
    async def refused(call_sid: str) -> bool:
        return False

    async def broken(call_sid: str) -> bool:
        raise KeyError("bug")

    async with HangUpRig() as rig:
        for action in (refused, broken):
            assert await rig.hang_up.request("transfer", end_reason="transferred", action=action)
            await rig.advance(0.1)
            assert not rig.ended() and not rig.hang_up.pending
        reasons = [f.reason for f in rig.probe.downstream(CallEndReasonFrame)]
        assert reasons == ["transferred", "", "transferred", ""]
        assert rig.hang_up.stats.actions_failed == 2
        assert await rig.hang_up.request("goodbye")  # the agent may still hang up later
        await rig.advance(0.1)
        assert rig.ended()
        assert [f.reason for f in rig.probe.downstream(CallEndReasonFrame)][-1] == "agent_hung_up"


async def test_a_machine_cannot_withdraw_a_hang_up_by_talking():
    async with HangUpRig() as rig:
        await rig.queue(*speech(GOODBYE))
        await rig.hang_up.request("voicemail left", end_reason="voicemail", withdrawable=False)
        await rig.advance(0.3)
        await rig.queue(InterruptionFrame())
        await rig.advance(1.0)
        assert rig.ended() and rig.hang_up.stats.withdrawn == 0


async def test_a_browser_call_names_no_twilio_account_so_twilio_is_not_asked():
    rest = TwilioRestClient(
        "AC" + "1" * 32, "token", base_url=f"http://127.0.0.1:{_closed_port()}", timeout_s=2.0
    )
    rig = HangUpRig(rest=rest)
    rig.twilio.account_sid = ""  # the softphone page's start: no Twilio account
    async with rig:
        await rig.hang_up.request("done")
        for _ in range(200):
            if rig.ended():
                break
            await asyncio.sleep(0.01)
        assert rig.ended() and rig.hang_up.stats.hung_up
        assert rig.hang_up.stats.rest_ok is None and rest.stats.failures_by_kind == {}
