"""The receptionist's desk: what the tools answer, what they refuse, and when they are offered.

Handlers are called the way the LLM service calls them (``AgentTool.call``: the arguments
model validates first, then the handler), so a garbled call from a small model is seen exactly as
the model would see the answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from voiceagent.pipelines.receptionist import RECEPTIONIST_PROMPT, ReceptionistBot
from voiceagent.pipelines.receptionist_tools import (
    TOOL_NAMES,
    WEEKDAYS,
    AppointmentBook,
    OfficeFacts,
    ReceptionDesk,
    normalize_day,
    normalize_time,
    receptionist_tools,
    tools_prompt,
)
from voiceagent.services.tools import ToolStats
from voiceagent.settings import Settings

ANN = {"name": "Ann Lee", "service": "cleaning", "day": "Tuesday", "time": "2 pm"}


class Desk:
    """One call's desk on a fresh office calendar, with its tools by name."""

    def __init__(self, book: AppointmentBook | None = None, call_sid: str = "CA0001") -> None:
        self.hang_ups: list[str] = []
        self.book = book or AppointmentBook()
        self.booked: list[Any] = []
        self.desk = ReceptionDesk(
            self.book,
            call_sid=lambda: call_sid,
            hang_up=self._hang_up,
            on_booked=self.booked.append,
        )
        self.tools = {t.name: t for t in receptionist_tools(self.desk)}
        self.stats = ToolStats()

    async def _hang_up(self, reason: str) -> bool:
        self.hang_ups.append(reason)
        return len(self.hang_ups) == 1

    async def call(self, name: str, arguments: Any) -> dict[str, Any]:
        return await self.tools[name].call(arguments, self.stats)


# ------------------------------------------------------------------ availability


async def test_tuesday_has_two_and_four_pm_open():
    desk = Desk()
    assert await desk.call("check_availability", {"day": "next Tuesday"}) == {
        "day": "tuesday",
        "office_open": True,
        "hours": "8 am to 5 pm",
        "open_slots": ["2 pm", "4 pm"],
    }


async def test_a_closed_day_and_a_day_without_openings():
    desk = Desk()
    saturday = await desk.call("check_availability", {"day": "Saturday"})
    assert saturday == {"day": "saturday", "office_open": False, "hours": None, "open_slots": []}
    friday = await desk.call("check_availability", {"day": "fri"})
    assert friday["hours"] == "8 am to 3 pm" and friday["open_slots"] == []


async def test_an_unknown_day_is_an_error_result_not_an_exception():
    desk = Desk()
    answer = await desk.call("check_availability", {"day": "blursday"})
    assert answer == {
        "error": "invalid arguments for check_availability: "
        "day: unknown day 'blursday': say a weekday, such as Tuesday",
        "executed": False,
    }
    missing = await desk.call("check_availability", {})
    assert missing["executed"] is False and "day: Field required" in missing["error"]


# ---------------------------------------------------------------------- booking


async def test_booking_an_open_slot_returns_a_validated_confirmation():
    desk = Desk()
    answer = await desk.call("book_appointment", {**ANN, "time": "14:00", "phone": " 555 0100 "})
    assert answer == {
        "booked": True,
        "confirmation_id": "BSD-0001",
        "name": "Ann Lee",
        "service": "cleaning",
        "day": "tuesday",
        "time": "2 pm",
        "phone": "555 0100",
        "price_dollars": 120,
        "call_sid": "CA0001",
    }
    assert [b.confirmation_id for b in desk.desk.bookings] == ["BSD-0001"]  # the call's ledger
    assert desk.booked == desk.desk.bookings == desk.book.bookings
    assert (await desk.call("check_availability", {"day": "tuesday"}))["open_slots"] == ["4 pm"]


async def test_each_slot_is_booked_once_across_calls():
    book = AppointmentBook()
    first, second = Desk(book, "CA0001"), Desk(book, "CA0002")
    assert (await first.call("book_appointment", ANN))["booked"] is True
    refused = await second.call("book_appointment", {**ANN, "name": "Bob Stone"})
    assert refused == {
        "error": "2 pm on Tuesday is already booked; open times: 4 pm",
        "executed": False,
    }
    assert second.desk.bookings == []
    other = await second.call("book_appointment", {**ANN, "name": "Bob Stone", "time": "4"})
    assert other["confirmation_id"] == "BSD-0002" and other["time"] == "4 pm"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({**ANN, "time": "3 pm"}, "3 pm on Tuesday is not open; open times: 2 pm, 4 pm"),
        ({**ANN, "day": "Monday"}, "2 pm on Monday is not open; open times: none"),
        ({**ANN, "day": "someday"}, "day: unknown day 'someday'"),
        ({**ANN, "time": "noonish"}, "time: unknown time 'noonish'"),
        ({**ANN, "service": "whitening"}, "we do not book 'whitening'; we book: cleaning"),
        ({**ANN, "name": " "}, "name: String should have at least 2 characters"),
        ({**ANN, "name": 42}, "name: Input should be a valid string"),
        ({k: v for k, v in ANN.items() if k != "time"}, "time: Field required"),
        ("book Ann on Tuesday", "Input should be a valid dictionary"),
    ],
)
async def test_a_booking_that_cannot_be_made_says_why(arguments: Any, problem: str):
    desk = Desk()
    answer = await desk.call("book_appointment", arguments)
    assert answer["executed"] is False and problem in answer["error"]
    assert desk.desk.bookings == [] and desk.book.bookings == []


def test_times_and_days_as_callers_and_models_say_them():
    assert [normalize_time(t) for t in ("2pm", "2:00 PM", "14:00", "2", "9", "2:30 p.m.")] == [
        "2 pm", "2 pm", "2 pm", "2 pm", "9 am", "2:30 pm",
    ]  # fmt: skip
    assert [normalize_day(d) for d in ("next Tuesday", "Tue", "this friday.", "on MONDAY")] == [
        "tuesday", "tuesday", "friday", "monday",
    ]  # fmt: skip
    for bad in ("25:00", "13 pm", "2:75"):
        with pytest.raises(ValueError):
            normalize_time(bad)


# ---------------------------------------------------------------------- end_call


async def test_end_call_asks_the_call_to_hang_up_once():
    desk = Desk()
    tool = desk.tools["end_call"]
    assert tool.side_effects and not tool.follow_up
    assert await desk.call("end_call", {"reason": "caller is done"}) == {
        "ending": True,
        "reason": "caller is done",
    }
    again = await desk.call("end_call", {"reason": "again"})
    assert again == {"error": "the call is already ending", "executed": False}
    assert desk.hang_ups == ["caller is done", "again"]


# --------------------------------------------------------------- prompt, selection


def test_the_llm_is_offered_the_schemas_of_the_request_models():
    offered = receptionist_tools(Desk().desk).openai_tools()
    tools = {t["function"]["name"]: t["function"] for t in offered}
    book = tools["book_appointment"]
    assert book["parameters"]["required"] == ["name", "service", "day", "time"]
    assert book["parameters"]["properties"]["day"]["enum"] == list(WEEKDAYS)
    assert book["parameters"]["properties"]["name"]["description"] == "The patient's full name"
    assert book["description"].endswith("Services: cleaning.")
    assert tools["check_availability"]["parameters"]["required"] == ["day"]
    assert tools["end_call"]["parameters"]["required"] == ["reason"]


def test_the_receptionists_prompt_tells_the_model_the_desk_facts():
    prompt, facts = RECEPTIONIST_PROMPT, OfficeFacts()
    assert facts.name in prompt and facts.address in prompt
    assert "Monday to Thursday 8 am to 5 pm" in prompt and "Friday 8 am to 3 pm" in prompt
    assert f"cleaning costs {facts.prices['cleaning']} dollars" in prompt
    assert "Tuesday we have openings at 2 pm and 4 pm" in prompt
    assert facts.openings == {"tuesday": ["2 pm", "4 pm"]}


def test_the_tools_sentence_names_only_the_advertised_tools():
    every = tools_prompt(TOOL_NAMES)
    assert all(name in every for name in TOOL_NAMES)
    assert tools_prompt(["end_call"]).startswith("You have tools: end_call to hang up")
    assert "book_appointment" not in tools_prompt(["check_availability", "end_call"])
    assert tools_prompt([]) == ""


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, ()),  # offline default: the local 0.5B model does not call tools reliably
        ({"OPENAI_API_KEY": "sk-test"}, TOOL_NAMES),
        ({"VOICEAGENT_AGENT__TOOLS": "true"}, TOOL_NAMES),
        ({"OPENAI_API_KEY": "sk-test", "VOICEAGENT_AGENT__TOOLS": "false"}, ()),
        ({"VOICEAGENT_AGENT__TOOLS": "end_call, check_availability"}, TOOL_NAMES[::2]),
    ],
)
def test_which_tools_the_bot_advertises(env: dict[str, str], names: tuple[str, ...]):
    bot = ReceptionistBot(Settings.from_env(env))
    assert bot.tool_names == names
    prompt = bot._call_settings(bot.settings).agent.system_prompt
    assert (
        prompt.endswith(tools_prompt(names))
        if names
        else prompt == bot.settings.agent.system_prompt
    )


def test_an_unknown_tool_name_is_a_configuration_error():
    with pytest.raises(ValueError, match=r"unknown tool\(s\) \['transfer'\]"):
        ReceptionistBot(Settings.from_env({"VOICEAGENT_AGENT__TOOLS": "end_call,transfer"}))
    with pytest.raises(ValueError, match="unknown receptionist tool"):
        receptionist_tools(ReceptionDesk(AppointmentBook()), ["transfer"])
