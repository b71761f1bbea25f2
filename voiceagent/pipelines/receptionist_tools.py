"""The receptionist's desk: the office's facts as typed data, and the tools the agent calls.

- ``OfficeFacts`` — hours, prices, open slots and address (the facts the default system prompt
  tells the model; a test keeps the two in step).
- ``AppointmentBook`` — the office's calendar, shared by every call of one bot: each open slot
  is booked once, with a confirmation number.
- ``ReceptionDesk`` — one call's desk: its tools and the bookings made on this call (its
  ledger; each booking is logged with the call sid, and the pipecat function-call frames put
  it in the call's record as a tool call).

Tools (:func:`receptionist_tools`): ``check_availability(day)`` (read-only),
``book_appointment(name, service, day, time, phone?)`` and ``end_call(reason)`` (side effects:
they run only for turns the caller committed, see ``ToolGuard``). Each tool's arguments are a
pydantic request model: the LLM is offered its generated JSON schema, and what it sends is
validated and normalized by it ("next Tuesday" → ``tuesday``, "14:00" → ``2 pm``); every
answer is a validated pydantic model dumped to JSON, or ``{"error": ..., "executed": false}``
saying what to fix.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from loguru import logger
from pydantic import BaseModel, Field, field_validator

from voiceagent.services.tools import AgentTool, ToolRegistry

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
TOOL_NAMES = ("check_availability", "book_appointment", "end_call")
TOOL_HINTS = {
    "check_availability": "check_availability for the open times on a day",
    "book_appointment": (
        "book_appointment once you know the caller's name, the service, the day and the time "
        "(then tell them the confirmation number)"
    ),
    "end_call": "end_call to hang up, after you have said goodbye in the same reply",
}

_DAY_WORDS = re.compile(r"\b(?:next|this|coming|on|the)\b")
_TIME_RE = re.compile(r"^(\d{1,2})(?:[:.](\d{2}))?\s*(?:([ap])\.?\s*m?\.?)?$")


def normalize_day(text: str) -> Weekday:
    """``"next Tuesday"``, ``"Tue"`` → ``"tuesday"``.

    Raises:
        ValueError: Not a weekday.
    """
    words = _DAY_WORDS.sub(" ", text.lower().replace(",", " ").replace(".", " ")).split()
    if len(words) == 1 and len(words[0]) >= 3:
        for day in WEEKDAYS:
            if day.startswith(words[0]):
                return day
    raise ValueError(f"unknown day {text!r}: say a weekday, such as Tuesday")


def normalize_time(text: str) -> str:
    """``"2pm"``, ``"2:00 PM"``, ``"14:00"`` → ``"2 pm"``; ``"2:30 pm"`` keeps its minutes.

    A bare hour is read in office hours: 8 to 11 as morning, 12 to 7 as afternoon.

    Raises:
        ValueError: Not a time of day.
    """
    match = _TIME_RE.match(text.strip().lower())
    if match is None:
        raise ValueError(f"unknown time {text!r}: say a time such as 2 pm")
    hour, minutes, half = int(match[1]), int(match[2] or 0), match[3]
    if minutes > 59 or hour > 23 or (half is not None and not 1 <= hour <= 12):
        raise ValueError(f"unknown time {text!r}: say a time such as 2 pm")
    if half is None:
        pm = hour >= 12 or hour <= 7
        hour = hour - 12 if hour > 12 else hour or 12
    else:
        pm = half == "p"
    clock = f"{hour}:{minutes:02d}" if minutes else f"{hour}"
    return f"{clock} {'pm' if pm else 'am'}"


class OfficeHours(BaseModel):
    """Opening hours of one day."""

    opens: str
    closes: str


class OfficeFacts(BaseModel):
    """What the receptionist knows about the office."""

    name: str = "Bright Smile Dental"
    address: str = "42 Main Street"
    hours: dict[Weekday, OfficeHours] = Field(
        default_factory=lambda: {
            **{d: OfficeHours(opens="8 am", closes="5 pm") for d in WEEKDAYS[:4]},
            "friday": OfficeHours(opens="8 am", closes="3 pm"),
        }
    )
    prices: dict[str, int] = Field(default_factory=lambda: {"cleaning": 120})
    """Services the office books, with their price in dollars without insurance."""
    openings: dict[Weekday, list[str]] = Field(
        default_factory=lambda: {"tuesday": ["2 pm", "4 pm"]}
    )
    """Open appointment slots next week, by day."""

    def service(self, text: str) -> str:
        """The office's name of a service ("Teeth cleaning" → ``cleaning``).

        Raises:
            ValueError: A service the office does not book.
        """
        words = set(re.findall(r"[a-z]+", text.lower()))
        for name in self.prices:
            if name in words or name == text.strip().lower():
                return name
        offered = ", ".join(self.prices)
        raise ValueError(f"we do not book {text!r}; we book: {offered}")


_DAY = "A weekday, e.g. Tuesday"


class AvailabilityRequest(BaseModel):
    """``check_availability`` arguments."""

    day: Weekday = Field(description=_DAY)

    @field_validator("day", mode="before")
    @classmethod
    def _weekday(cls, value: Any) -> str:
        return normalize_day(str(value))


class BookingRequest(BaseModel):
    """``book_appointment`` arguments."""

    name: str = Field(min_length=2, max_length=80, description="The patient's full name")
    service: str = Field(min_length=2, max_length=40, description="A service the office books")
    day: Weekday = Field(description=_DAY)
    time: str = Field(description="An open time, e.g. 2 pm")
    phone: str | None = Field(None, max_length=32, description="Callback number, if given")

    @field_validator("name", "service", "phone", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("day", mode="before")
    @classmethod
    def _weekday(cls, value: Any) -> str:
        return normalize_day(str(value))

    @field_validator("time", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> str:
        return normalize_time(str(value))


class EndCallRequest(BaseModel):
    """``end_call`` arguments."""

    reason: str = Field(description="Why the call ends")


class Availability(BaseModel):
    """``check_availability`` result."""

    day: Weekday
    office_open: bool
    hours: str | None
    open_slots: list[str]


class BookingConfirmation(BaseModel):
    """``book_appointment`` result: the booking as made."""

    booked: Literal[True] = True
    confirmation_id: str = Field(pattern=r"^[A-Z]{2,5}-\d{4}$")
    name: str
    service: str
    day: Weekday
    time: str
    phone: str | None
    price_dollars: int | None
    call_sid: str


class AppointmentBook:
    """The office's calendar (all calls of a bot share it; event-loop only, no locking)."""

    def __init__(self, facts: OfficeFacts | None = None) -> None:
        self.facts = facts or OfficeFacts()
        self._open: dict[Weekday, list[str]] = {
            day: [normalize_time(t) for t in times] for day, times in self.facts.openings.items()
        }
        self.bookings: list[BookingConfirmation] = []
        self._taken: set[tuple[str, str]] = set()
        self._numbers = itertools.count(1)
        self._prefix = "".join(w[0] for w in self.facts.name.split() if w[:1].isalpha()).upper()

    def availability(self, day: Weekday) -> Availability:
        """Hours and slots still open on ``day``."""
        hours = self.facts.hours.get(day)
        return Availability(
            day=day,
            office_open=hours is not None,
            hours=f"{hours.opens} to {hours.closes}" if hours is not None else None,
            open_slots=list(self._open.get(day, [])) if hours is not None else [],
        )

    def book(self, request: BookingRequest, call_sid: str) -> BookingConfirmation:
        """Take the slot for the caller.

        Raises:
            ValueError: The service is not offered or the slot is not open (any more).
        """
        service = self.facts.service(request.service)
        slots = self._open.get(request.day, [])
        if request.time not in slots:
            day = request.day.capitalize()
            left = ", ".join(slots) if slots else "none"
            why = (
                "is already booked" if (request.day, request.time) in self._taken else "is not open"
            )
            raise ValueError(f"{request.time} on {day} {why}; open times: {left}")
        confirmation = BookingConfirmation(
            confirmation_id=f"{self._prefix[:5] or 'APT'}-{next(self._numbers):04d}",
            name=request.name,
            service=service,
            day=request.day,
            time=request.time,
            phone=request.phone,
            price_dollars=self.facts.prices.get(service),
            call_sid=call_sid,
        )
        slots.remove(request.time)
        self._taken.add((request.day, request.time))
        self.bookings.append(confirmation)
        return confirmation


HangUp = Callable[[str], Awaitable[bool]]
"""``CallHangUp.request``: hang up after the goodbye; False if the call is already ending."""


class ReceptionDesk:
    """One call's desk: the tools, and the bookings made on this call."""

    def __init__(
        self,
        book: AppointmentBook,
        *,
        call_sid: Callable[[], str] = lambda: "",
        hang_up: HangUp | None = None,
        on_booked: Callable[[BookingConfirmation], None] | None = None,
    ) -> None:
        """Create the desk of one call.

        Args:
            book: The office's calendar.
            call_sid: The call's sid (known once Twilio's ``start`` arrived).
            hang_up: Ends the call after the goodbye (``CallHangUp.request``).
            on_booked: Told each booking made on this call (e.g. the bot's ledger).
        """
        self.book = book
        self.bookings: list[BookingConfirmation] = []
        """This call's ledger."""
        self._call_sid = call_sid
        self._hang_up = hang_up
        self._on_booked = on_booked

    async def check_availability(self, request: AvailabilityRequest) -> dict[str, Any]:
        """Tool handler: open slots on a day."""
        return self.book.availability(request.day).model_dump()

    async def book_appointment(self, request: BookingRequest) -> dict[str, Any]:
        """Tool handler: book an open slot (each slot once)."""
        sid = self._call_sid() or "?"
        try:
            confirmation = self.book.book(request, sid)
        except ValueError as e:
            logger.info(f"call {sid}: booking refused: {e}")
            return {"error": str(e), "executed": False}
        self.bookings.append(confirmation)
        if self._on_booked is not None:
            self._on_booked(confirmation)
        logger.info(
            f"call {sid}: booked {confirmation.service} for {confirmation.name} on "
            f"{confirmation.day} at {confirmation.time} ({confirmation.confirmation_id})"
        )
        return confirmation.model_dump()

    async def end_call(self, request: EndCallRequest) -> dict[str, Any]:
        """Tool handler: hang up once the goodbye has played."""
        reason = request.reason[:200] or "conversation finished"
        if self._hang_up is None:
            return {"error": "hanging up is not available on this call", "executed": False}
        if not await self._hang_up(reason):
            return {"error": "the call is already ending", "executed": False}
        return {"ending": True, "reason": reason}


def receptionist_tools(desk: ReceptionDesk, names: Sequence[str] = TOOL_NAMES) -> ToolRegistry:
    """The desk's tools named in ``names``.

    Raises:
        ValueError: An unknown tool name.
    """
    unknown = sorted(set(names) - set(TOOL_NAMES))
    if unknown:
        raise ValueError(f"unknown receptionist tool(s) {unknown}; tools are {list(TOOL_NAMES)}")
    services = ", ".join(desk.book.facts.prices)
    tools: dict[str, AgentTool[Any]] = {
        "check_availability": AgentTool(
            "check_availability",
            "Open appointment times and opening hours on a weekday.",
            AvailabilityRequest,
            desk.check_availability,
            side_effects=False,
        ),
        "book_appointment": AgentTool(
            "book_appointment",
            "Book an open appointment time for the caller; returns a confirmation. "
            f"Services: {services}.",
            BookingRequest,
            desk.book_appointment,
            side_effects=True,
        ),
        "end_call": AgentTool(
            "end_call",
            "Hang up. Say goodbye in the same reply, before calling this.",
            EndCallRequest,
            desk.end_call,
            side_effects=True,
            follow_up=False,
        ),
    }
    return ToolRegistry(tools[name] for name in TOOL_NAMES if name in names)


def tools_prompt(names: Sequence[str]) -> str:
    """The system-prompt sentence that tells the model about the tools in ``names``."""
    hints = [TOOL_HINTS[name] for name in TOOL_NAMES if name in names]
    if not hints:
        return ""
    listed = hints[0] if len(hints) == 1 else "; ".join(hints[:-1]) + "; and " + hints[-1]
    return f"You have tools: {listed}. Use them instead of guessing."
