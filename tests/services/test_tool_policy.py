"""Tool calls vs speculation and barge-in: side effects only for turns the caller committed.

Call scripts against the fake OpenAI server streaming tool calls. The turn engine's frames
(``LLMContextFrame(speculation=True)``, ``UserStoppedSpeakingFrame`` for the commit,
``EagerEndOfTurnCancelFrame``, ``InterruptionFrame``) are pushed by hand; the practice's desk
records what the agent's tools actually did.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    FunctionCallCancelFrame,
    FunctionCallFromLLM,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import FunctionCallParams
from pydantic import BaseModel, ConfigDict, Field

from voiceagent.services.llm import VoiceLLMService, create_llm_service
from voiceagent.services.tools import (
    AgentTool,
    NoArguments,
    ToolGuard,
    ToolRegistry,
    pipecat_handler,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/services: shared fakes
from fakes.fake_openai import FakeReply  # noqa: E402
from fakes.fake_openai_tools import FakeToolCall, FakeToolReply, FakeToolServer  # noqa: E402
from fakes.harness import LivePipeline  # noqa: E402

BOOKING = {"date": "2026-12-02", "time": "10:00", "service": "cleaning"}


class Booking(BaseModel):
    """``book_appointment`` arguments."""

    date: str = Field(description="YYYY-MM-DD")
    time: str = Field(description="HH:MM")
    service: Literal["cleaning", "checkup"] | None = None


class HoursQuery(BaseModel):
    """``lookup_hours`` arguments."""

    day: str


class Desk:
    """The practice's front desk: what the agent's tools really did."""

    def __init__(self) -> None:
        self.bookings: list[dict[str, Any]] = []
        self.lookups: list[dict[str, Any]] = []
        self.booking_started = asyncio.Event()
        self.booking_may_finish: asyncio.Event | None = None

    async def book(self, booking: Booking) -> dict[str, Any]:
        self.booking_started.set()
        if self.booking_may_finish is not None:
            await self.booking_may_finish.wait()
        self.bookings.append(booking.model_dump())
        return {"booked": True, "date": booking.date, "time": booking.time}

    async def hours(self, query: HoursQuery) -> dict[str, Any]:
        self.lookups.append(query.model_dump())
        return {"day": query.day, "open": "09:00", "close": "17:00"}

    def tools(self) -> ToolRegistry:
        return ToolRegistry(
            [
                AgentTool(
                    name="book_appointment",
                    description="Book an appointment at the practice.",
                    arguments=Booking,
                    handler=self.book,
                    side_effects=True,
                ),
                AgentTool(
                    name="lookup_hours",
                    description="Opening hours of the practice on a given day.",
                    arguments=HoursQuery,
                    handler=self.hours,
                    side_effects=False,
                ),
            ]
        )


class Call:
    """The LLM service in a live pipeline, with the desk's tools registered."""

    def __init__(self, p: LivePipeline, llm: VoiceLLMService, fake: FakeToolServer, desk: Desk):
        self.p, self.llm, self.fake, self.desk = p, llm, fake, desk
        self.schema = llm.register_tools(desk.tools())

    async def generation(self, text: str, *, speculative: bool) -> None:
        """The engine asks the LLM to answer the caller's (maybe not yet committed) turn."""
        context = LLMContext(messages=[{"role": "user", "content": text}], tools=self.schema)
        if speculative:
            await self.p.push(UserStartedSpeakingFrame())
        else:
            await self.p.push(UserStoppedSpeakingFrame())
        await self.p.push(LLMContextFrame(context=context, speculation=speculative))

    async def replies_end(self, count: int) -> None:
        await self.p.wait_for(lambda: len(self.p.down_of(LLMFullResponseEndFrame)) >= count, 10)

    async def until(self, predicate, timeout: float = 5.0) -> None:
        await self.p.wait_for(predicate, timeout)

    def results(self, name: str) -> list[FunctionCallResultFrame]:
        return [f for f in self.p.down_of(FunctionCallResultFrame) if f.function_name == name]

    def started(self, name: str) -> list[FunctionCallInProgressFrame]:
        frames = self.p.down_of(FunctionCallInProgressFrame)
        return [f for f in frames if f.function_name == name]

    async def settle_with_another_turn(self) -> None:
        """A later plain reply: everything queued before it has had its chance to run."""
        self.fake.reply = FakeReply(tokens=["Anything", " else?"])
        ends = len(self.p.down_of(LLMFullResponseEndFrame))
        await self.generation("Thanks.", speculative=False)
        await self.replies_end(ends + 1)
        await asyncio.sleep(0.05)


@pytest.fixture
async def call():
    desk = Desk()
    async with FakeToolServer() as fake:
        llm = create_llm_service(
            base_url=fake.base_url, api_key=None, model="local", max_tokens=80, temperature=0.3
        )
        async with LivePipeline(llm) as p:
            yield Call(p, llm, fake, desk)


def books(arguments: dict[str, Any] | str = BOOKING, **kwargs) -> FakeToolReply:
    return FakeToolReply(tool_calls=[FakeToolCall("book_appointment", arguments)], **kwargs)


# ---------------------------------------------------------------- speculation


async def test_a_speculation_that_wants_to_book_is_withdrawn_and_never_books(call: Call):
    # Caller: "I'd like to book a cleaning on December 2nd at ten" — the engine speculates
    # before the caller is done; the model answers with a booking. pipecat's LLM service
    # withdraws a speculative inference that asks for a tool: nothing is booked.
    call.fake.reply = books()
    await call.generation("I'd like to book a cleaning on December 2nd at ten", speculative=True)
    await call.until(lambda: bool(call.p.up_of(EagerEndOfTurnCancelFrame)))
    await call.settle_with_another_turn()
    assert call.desk.bookings == [] and not call.started("book_appointment")
    assert call.fake.requests[0]["tools"][0]["function"]["name"] == "book_appointment"


async def test_a_speculation_withdrawn_mid_stream_never_books(call: Call):
    # The model says a few words first, slowly; the caller resumes before the call is out.
    call.fake.reply = books(tokens=["Sure", ",", " one", " moment", "."], token_delay_s=0.05)
    await call.generation("Book me a cleaning on December 2nd at ten", speculative=True)
    await asyncio.sleep(0.12)
    await call.p.push(EagerEndOfTurnCancelFrame())
    await asyncio.wait_for(call.fake.client_gone.wait(), 2.0)
    await call.settle_with_another_turn()
    assert call.desk.bookings == [] and not call.started("book_appointment")


# ------------------------------------------------------------------ committed


async def test_committed_turn_books_once_with_validated_arguments(call: Call):
    # The model adds a stray "notes" argument: the handler sees only declared fields.
    call.fake.reply = books({**BOOKING, "notes": "caller sounded happy"})
    await call.generation("Book a cleaning on December 2nd at ten, please.", speculative=False)
    await call.until(lambda: bool(call.results("book_appointment")))

    await call.settle_with_another_turn()
    assert call.desk.bookings == [BOOKING]
    [result] = call.results("book_appointment")
    assert result.result == {"booked": True, "date": "2026-12-02", "time": "10:00"}
    assert call.llm.tool_stats.dropped == 0


# ------------------------------------------------------------------- barge-in


async def test_barge_in_after_booking_started_lets_it_finish_and_report(call: Call):
    call.desk.booking_may_finish = asyncio.Event()
    call.fake.reply = books()
    await call.generation("Book a cleaning on December 2nd at ten.", speculative=False)
    await asyncio.wait_for(call.desk.booking_started.wait(), 5.0)

    await call.p.push(InterruptionFrame())  # the caller talks over the agent mid-booking
    await asyncio.sleep(0.05)
    call.desk.booking_may_finish.set()
    await call.until(lambda: bool(call.results("book_appointment")))

    assert call.desk.bookings == [BOOKING]
    assert call.results("book_appointment")[0].result["booked"] is True
    assert not call.p.down_of(FunctionCallCancelFrame)
    assert call.llm.tool_stats.dropped == 0


# ------------------------------------------------------------ invalid arguments


async def test_invalid_arguments_reach_the_llm_as_an_error_not_the_handler(call: Call):
    # A small model garbles the call: a number for the date, no time, an unknown service.
    call.fake.reply = books({"date": 20261202, "service": "whitening"})
    await call.generation("Book me in on the second.", speculative=False)
    await call.until(lambda: bool(call.results("book_appointment")))

    assert call.desk.bookings == []
    [result] = call.results("book_appointment")
    assert result.result["executed"] is False
    error = result.result["error"]
    assert "date: Input should be a valid string" in error
    assert "time: Field required" in error
    assert "service: Input should be 'cleaning' or 'checkup'" in error
    assert call.llm.tool_stats.invalid_arguments == 1


# ----------------------------------------------------- policy and validation units


def _fc(name: str, call_id: str) -> FunctionCallFromLLM:
    return FunctionCallFromLLM(function_name=name, tool_call_id=call_id, arguments={}, context=None)


async def test_booking_admitted_then_barge_in_before_its_handler_starts_is_refused():
    desk = Desk()
    [book, _] = list(desk.tools())
    guard = ToolGuard(lambda name: name == "book_appointment")
    guard.admit([_fc("book_appointment", "c1")])
    guard.interrupted()  # lands between the model's ask and the handler's first line

    results: list[Any] = []

    async def report(result: Any, *, properties=None) -> None:
        results.append(result)

    params = FunctionCallParams(
        function_name="book_appointment",
        tool_call_id="c1",
        arguments=BOOKING,
        llm=None,  # type: ignore[arg-type]
        pipeline_worker=None,  # type: ignore[arg-type]
        context=LLMContext(),
        result_callback=report,
    )
    await pipecat_handler(book, guard)(params)
    assert desk.bookings == []
    assert results[0]["executed"] is False
    assert guard.stats.dropped_reasons == {"interrupted_before_start": 1}


async def test_a_booking_asked_for_before_no_interruption_runs():
    desk = Desk()
    [book, _] = list(desk.tools())
    guard = ToolGuard(lambda name: name == "book_appointment")
    guard.interrupted()  # an earlier barge-in does not concern a later ask
    guard.admit([_fc("book_appointment", "c2")])
    results: list[Any] = []

    async def report(result: Any, *, properties=None) -> None:
        results.append(result)

    params = FunctionCallParams(
        function_name="book_appointment",
        tool_call_id="c2",
        arguments=BOOKING,
        llm=None,  # type: ignore[arg-type]
        pipeline_worker=None,  # type: ignore[arg-type]
        context=LLMContext(),
        result_callback=report,
    )
    await pipecat_handler(book, guard)(params)
    assert desk.bookings == [BOOKING] and results[0]["booked"] is True


class Who(BaseModel):
    model_config = ConfigDict(extra="forbid")  # undeclared keys are refused, not dropped

    age: int


class Probe(BaseModel):
    n: int
    tags: list[str] = []
    who: Who | None = None


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "n: Field required"),
        ({"n": 2.5}, "n: Input should be a valid integer, got a number with a fractional part"),
        ({"n": 1, "tags": ["a", 3]}, "tags[1]: Input should be a valid string"),
        ({"n": 1, "who": {"age": "x"}}, "who.age: Input should be a valid integer"),
        ({"n": 1, "who": {"age": 3, "pet": "cat"}}, "who.pet: Extra inputs are not permitted"),
        ([1, 2], "Input should be a valid dictionary or instance of Probe"),
    ],
)
def test_argument_validation_names_the_problem(arguments: Any, problem: str):
    tool = AgentTool("probe", "", Probe, Desk().hours, side_effects=False)
    args, errors = tool.validate(arguments)
    assert args is None and any(e.startswith(problem) for e in errors), errors


def test_the_llm_is_offered_the_schema_generated_from_the_arguments_model():
    tool = AgentTool("probe", "Probe.", Probe, Desk().hours, side_effects=False)
    [offered] = ToolRegistry([tool]).openai_tools()
    parameters = offered["function"]["parameters"]
    assert parameters["required"] == ["n"]
    assert parameters["properties"]["n"] == {"type": "integer"}  # no titles
    assert parameters["properties"]["tags"]["items"] == {"type": "string"}
    # The nested model is inlined (pipecat's FunctionSchema carries no $defs).
    who = parameters["properties"]["who"]["anyOf"][0]
    assert who["properties"]["age"] == {"type": "integer"}
    assert who["additionalProperties"] is False
    assert "$ref" not in json.dumps(offered) and "$defs" not in json.dumps(offered)
    # Undeclared keys are dropped before the handler sees them (pydantic's default).
    args, errors = tool.validate({"n": "3", "mood": "cheerful"})
    assert errors == [] and args == Probe(n=3)


class Node(BaseModel):
    children: list[Node] = []


def test_a_tool_without_an_arguments_model_is_refused_at_startup():
    with pytest.raises(TypeError):
        AgentTool("probe", "", {"type": "object"}, Desk().hours, side_effects=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recursive"):
        AgentTool("tree", "", Node, Desk().hours, side_effects=False)


async def test_a_failing_handler_becomes_an_error_result():
    async def broken(args: NoArguments) -> Any:
        raise RuntimeError("calendar offline")

    tool = AgentTool("end_call", "Hang up.", NoArguments, broken, side_effects=True)
    result = await tool.call({})
    assert result == {"error": "end_call failed (RuntimeError)", "executed": False}


async def test_a_model_not_offered_tools_gets_none_in_its_request():
    async with FakeToolServer(FakeReply(tokens=["Hi."])) as fake:
        llm = create_llm_service(
            base_url=fake.base_url,
            api_key=None,
            model="local",
            max_tokens=80,
            temperature=0.3,
            offer_tools=False,
        )
        schema = llm.register_tools(Desk().tools())
        async with LivePipeline(llm) as p:
            context = LLMContext(messages=[{"role": "user", "content": "Hello"}], tools=schema)
            await p.push(LLMContextFrame(context=context))
            await p.wait_for(lambda: bool(p.down_of(LLMFullResponseEndFrame)), 10)
        assert fake.requests and "tools" not in fake.requests[0]
        assert "tool_choice" not in fake.requests[0]
