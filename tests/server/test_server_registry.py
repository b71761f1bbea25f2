"""CallRegistry: bookkeeping and the drain of graceful shutdown (fake calls, short graces)."""

from __future__ import annotations

import asyncio

from voiceagent.server.registry import CallRegistry


class FakeCall:
    """A call that hangs up by itself after ``hangs_up_after`` s, or only when ended."""

    def __init__(self, label: str, hangs_up_after: float | None = None) -> None:
        self.label = label
        self.frames_in = 5
        self.frames_out = 3
        self.finished = asyncio.Event()
        self.ended_with: str | None = None
        if hangs_up_after is not None:
            asyncio.get_running_loop().call_later(hangs_up_after, self.finished.set)

    async def end(self, reason: str) -> None:
        self.ended_with = reason
        self.finished.set()


async def test_register_counts_and_refuses_after_shutdown_began() -> None:
    registry = CallRegistry()
    a, b = FakeCall("CA1"), FakeCall("CA2")
    assert registry.register(a) and registry.register(b)
    assert registry.active_count == 2 and set(registry.calls) == {a, b}
    registry.unregister(a)
    registry.unregister(a)  # twice is harmless
    assert registry.active_count == 1
    registry.stop_accepting()
    assert not registry.register(FakeCall("CA3"))
    assert registry.active_count == 1


async def test_calls_that_finish_within_the_grace_are_not_ended() -> None:
    registry = CallRegistry()
    polite = FakeCall("CA1", hangs_up_after=0.05)
    registry.register(polite)
    assert await registry.end_all(grace_s=2.0) == 0
    assert polite.ended_with is None
    assert not registry.accepting


async def test_calls_still_talking_after_the_grace_are_ended() -> None:
    registry = CallRegistry()
    polite, chatty = FakeCall("CA1", hangs_up_after=0.01), FakeCall("CA2")
    registry.register(polite)
    registry.register(chatty)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await registry.end_all(grace_s=0.2) == 1
    assert 0.15 <= loop.time() - t0 < 1.0
    assert chatty.ended_with == "server shutdown"
    assert polite.ended_with is None


async def test_end_all_with_no_calls_returns_at_once() -> None:
    registry = CallRegistry()
    assert await asyncio.wait_for(registry.end_all(grace_s=30.0), 0.5) == 0


class StreamingCall(FakeCall):
    """A call whose stream may or may not have started (frames for it queue up)."""

    def __init__(self, label: str, *, started: bool) -> None:
        super().__init__(label)
        self.started = started
        self.delivered: list = []

    async def deliver(self, frame) -> bool:
        if not self.started:
            return False
        self.delivered.append(frame)
        return True


async def test_frames_for_a_call_reach_it_or_wait_for_its_stream_a_while() -> None:
    from voiceagent.clock import ManualClock
    from voiceagent.frames import AnsweredByFrame
    from voiceagent.server.registry import MAILBOX_TTL_S

    clock = ManualClock()
    registry = CallRegistry(clock=clock)
    live, starting = StreamingCall("CA1", started=True), StreamingCall("#2", started=False)
    registry.register(live)
    registry.register(starting)
    assert await registry.deliver("CA1", AnsweredByFrame(answered_by="human"))
    assert [f.answered_by for f in live.delivered] == ["human"]
    # Not streaming yet (its label is not the sid yet): kept until it asks.
    assert not await registry.deliver("CA2", AnsweredByFrame(answered_by="machine_start"))
    assert not await registry.deliver("CA3", AnsweredByFrame(answered_by="fax"))
    clock.advance(MAILBOX_TTL_S - 1.0)
    assert [f.answered_by for f in registry.take_mail("CA2")] == ["machine_start"]
    assert registry.take_mail("CA2") == []  # taken once
    clock.advance(2.0)
    assert registry.take_mail("CA3") == []  # too old: its call never started
