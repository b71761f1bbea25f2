"""Phone calls with the receptionist's tools: book, confirm, say goodbye, hang up.

Call scripts through the bundled bot's real chain (turn engine → VoiceLLMService with pipecat's
speculation gate → aggregator → … → hang-up → TwilioOutput) against the fake OpenAI server
streaming tool calls, a Twilio leg that echoes marks as audio plays, and a fake Twilio REST API.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from pipecat.frames.frames import InterruptionFrame

from voiceagent.processors.fallback_stages import LLMFallback
from voiceagent.services.llm import create_llm_service

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # shared fakes
from fakes.fake_openai import FakeReply  # noqa: E402
from fakes.fake_openai_tools import FakeToolCall, FakeToolReply, FakeToolServer  # noqa: E402
from phone_call_harness import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    CALL_SID,
    SYSTEM,
    FakeTwilioRest,
    PhoneCall,
    receptionist_settings,
)

ANN = {"name": "Ann Lee", "service": "cleaning", "day": "next Tuesday", "time": "2 pm"}
CONFIRM = ["You're", " booked", " for", " Tuesday", " at", " 2", " pm.", " Your", " number", " is"]
CONFIRM += [" BSD-0001."]
GOODBYE = ["Thanks", " for", " calling,", " goodbye!"]


def heard(call: PhoneCall) -> str:
    """What the agent said that the caller heard (the context keeps only that)."""
    messages = call.parts.conversation.messages
    return " ".join(m["content"] for m in messages if m["role"] == "assistant" and m["content"])


def tool_messages(request: dict) -> list[dict]:
    return [m for m in request["messages"] if m["role"] == "tool" or m.get("tool_calls")]


async def test_caller_books_tuesday_at_two_the_agent_confirms_then_hangs_up(tmp_path: Path):
    script = [
        FakeToolReply(
            tokens=["Sure,", " one", " moment."],
            tool_calls=[FakeToolCall("book_appointment", ANN, id="call_book")],
        ),
        FakeReply(tokens=CONFIRM),
        FakeToolReply(
            tokens=GOODBYE,
            tool_calls=[FakeToolCall("end_call", {"reason": "caller is done"}, id="call_end")],
        ),
    ]
    async with (
        FakeToolServer(script=script) as llm,
        FakeTwilioRest() as rest,
    ):
        settings = receptionist_settings(llm.base_url, tmp_path, rest.base_url)
        async with PhoneCall(settings) as call:
            rest.call = call
            await call.says("Hi, this is Ann Lee, I'd like a cleaning next Tuesday at 2 pm.")
            await call.plays_out(lambda: len(call.bot.bookings.get(CALL_SID, [])) == 1)
            await call.plays_out(lambda: "Your number is BSD-0001." in call.tts.spoken)

            # The booking: validated, made once, in the call's ledger and the office's book.
            [booking] = call.bot.bookings[CALL_SID]
            assert (booking.confirmation_id, booking.name, booking.day, booking.time) == (
                "BSD-0001",
                "Ann Lee",
                "tuesday",
                "2 pm",
            )
            assert call.bot.appointments.availability("tuesday").open_slots == ["4 pm"]

            # The LLM saw the tools, then the result, and answered with it.
            first, second = llm.requests[0], llm.requests[1]
            names = [t["function"]["name"] for t in first["tools"]]
            assert names == ["check_availability", "book_appointment", "end_call"]
            assert first["messages"][0] == {"role": "system", "content": SYSTEM}
            calls, result = tool_messages(second)
            assert calls["tool_calls"][0]["id"] == "call_book"
            assert json.loads(calls["tool_calls"][0]["function"]["arguments"]) == ANN
            assert result["tool_call_id"] == "call_book"
            assert json.loads(result["content"])["confirmation_id"] == "BSD-0001"
            assert call.tts.spoken == [
                "Sure,",
                "one moment.",
                "You're booked for Tuesday at 2 pm.",
                "Your number is BSD-0001.",
            ]

            # The caller hears the confirmation, says goodbye; the agent does, and hangs up.
            await call.plays_out(lambda: "BSD-0001." in heard(call))
            await call.says("Great, that's all. Bye!")
            await call.plays_out(lambda: bool(rest.requests))
            assert call.tts.spoken[-2:] == ["Thanks for calling,", "goodbye!"]
            assert call.run is not None
            await call.plays_out(lambda: call.run.done())

        # Twilio was told to end the call only after every mark of the goodbye came back.
        [hang_up] = rest.requests
        assert hang_up.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{CALL_SID}.json"
        assert hang_up.form == {"Status": "completed"}
        credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        assert hang_up.authorization == f"Basic {credentials}"
        assert hang_up.marks_echoed == hang_up.marks_sent > 0
        assert len(llm.requests) == 3  # nothing is generated after end_call
        assert call.parts.processors["hang_up"].stats.rest_ok is True

        # The call's record holds the tool calls with their results.
        detail = await call.stored()
        tools = [(e.text, e.data["stage"]) for e in detail.events if e.kind == "tool"]
        assert tools == [
            ("book_appointment", "call"),
            ("book_appointment", "result"),
            ("end_call", "call"),
            ("end_call", "result"),
        ]
        booked = next(e for e in detail.events if e.kind == "tool" and e.data["stage"] == "result")
        assert booked.data["result"]["confirmation_id"] == "BSD-0001"


async def test_a_speculation_that_wants_to_book_never_books_its_slot(tmp_path: Path):
    # "Book me a cleaning Tuesday at 2 pm," — a pause — "no, make it 4 pm".
    script = [
        FakeToolReply(tool_calls=[FakeToolCall("book_appointment", ANN, id="call_spec")]),
        FakeToolReply(
            tokens=["Sure."],
            tool_calls=[FakeToolCall("book_appointment", {**ANN, "time": "4 pm"}, id="call_real")],
        ),
        FakeReply(tokens=["Booked", " for", " 4", " pm."]),
    ]
    async with FakeToolServer(script=script) as llm:
        settings = receptionist_settings(llm.base_url, tmp_path, speculate=True)
        async with PhoneCall(settings) as call:
            engine = call.parts.processors["turns"].engine
            await call.says("I'm Ann Lee, book me a cleaning on Tuesday at 2 pm,")
            # The engine started the LLM on the pause; the model wants to book: pipecat's
            # LLM service withdraws a speculation that asks for a tool.
            await call.until(lambda: engine.utterance.no_speculation)
            assert call.bot.bookings == {}

            await call.says("no, make it 4 pm")  # the caller goes on; then the commit
            await call.plays_out(lambda: "Booked for 4 pm." in call.tts.spoken)

            assert [b.time for b in call.bot.bookings[CALL_SID]] == ["4 pm"]
            assert call.bot.appointments.availability("tuesday").open_slots == ["2 pm"]
            assert len(llm.requests) == 3
            [calls, result] = tool_messages(llm.requests[2])
            assert [c["id"] for c in calls["tool_calls"]] == ["call_real"]
            assert json.loads(result["content"])["time"] == "4 pm"
            assert "call_spec" not in json.dumps(llm.requests)
            assert call.tts.spoken == ["Sure.", "Booked for 4 pm."]

        detail = await call.stored()
        ids = {e.data["tool_call_id"] for e in detail.events if e.kind == "tool"}
        assert ids == {"call_real"}


async def test_a_lookup_of_a_withdrawn_speculation_never_reaches_the_conversation(
    tmp_path: Path,
):
    script = [
        FakeToolReply(tool_calls=[FakeToolCall("check_availability", {"day": "friday"})]),
        FakeReply(tokens=["Tuesday", " at", " 2", " or", " 4", " pm."]),
    ]
    async with FakeToolServer(script=script) as llm:
        call = PhoneCall(receptionist_settings(llm.base_url, tmp_path, speculate=True))
        async with call:
            engine = call.parts.processors["turns"].engine
            await call.says("What do you have on Friday,")
            await call.until(lambda: engine.utterance.no_speculation)
            await call.says("or rather on Tuesday?")
            await call.plays_out(lambda: "Tuesday at 2 or 4 pm." in call.tts.spoken)

            assert len(llm.requests) == 2 and not tool_messages(llm.requests[1])
            assert not any(m["role"] == "tool" for m in call.parts.conversation.messages)


async def test_a_failed_rest_hang_up_is_logged_and_the_call_still_ends(tmp_path: Path, caplog):
    script = [
        FakeToolReply(tokens=GOODBYE, tool_calls=[FakeToolCall("end_call", {"reason": "done"})])
    ]
    async with FakeToolServer(script=script) as llm, FakeTwilioRest(status=404) as rest:
        settings = receptionist_settings(llm.base_url, tmp_path, rest.base_url)
        async with PhoneCall(settings) as call:
            rest.call = call
            hang_up = call.parts.processors["hang_up"]
            rest_client = hang_up._rest
            await call.says("That's all, bye.")
            await call.plays_out(lambda: call.run.done())

            assert len(rest.requests) == 1
            assert hang_up.stats.hung_up and hang_up.stats.rest_ok is False
            assert rest_client.stats.failures_by_kind == {"not_found": 1}
            assert call.tts.spoken == ["Thanks for calling,", "goodbye!"]


async def test_a_caller_speaking_over_the_goodbye_keeps_the_call_open(tmp_path: Path):
    long_goodbye = ["Thanks", " for", " calling.", " Have", " a", " lovely", " day.", " Bye!"]
    script = [
        FakeToolReply(
            tokens=long_goodbye, tool_calls=[FakeToolCall("end_call", {"reason": "done"})]
        ),
        FakeReply(tokens=["Of", " course,", " what", " else?"]),
    ]
    async with FakeToolServer(script=script) as llm, FakeTwilioRest() as rest:
        settings = receptionist_settings(llm.base_url, tmp_path, rest.base_url)
        async with PhoneCall(settings) as call:
            hang_up = call.parts.processors["hang_up"]
            await call.says("That's all, bye.")
            await call.plays_out(lambda: hang_up.pending and call.call.output.marks_sent >= 1)

            # "Oh wait, one more thing!" — the caller barges in on the goodbye.
            await call.worker.queue_frame(InterruptionFrame())
            await call.plays_out(lambda: not hang_up.pending)
            await call.wait(1.0)

            assert hang_up.stats.withdrawn == 1 and not hang_up.stats.hung_up
            assert not rest.requests and not call.run.done()


async def test_the_agent_looks_up_tuesday_and_answers_with_the_open_times(tmp_path: Path):
    script = [
        FakeToolReply(tool_calls=[FakeToolCall("check_availability", {"day": "Tuesday"})]),
        FakeReply(tokens=["We", " have", " 2", " pm", " and", " 4", " pm."]),
    ]
    async with FakeToolServer(script=script) as llm:
        call = PhoneCall(receptionist_settings(llm.base_url, tmp_path))
        async with call:
            await call.says("What times do you have on Tuesday?")
            await call.plays_out(lambda: "We have 2 pm and 4 pm." in call.tts.spoken)

            [calls, result] = tool_messages(llm.requests[1])
            assert calls["tool_calls"][0]["function"]["name"] == "check_availability"
            assert json.loads(result["content"])["open_slots"] == ["2 pm", "4 pm"]
            await call.plays_out(lambda: "We have 2 pm and 4 pm." in heard(call))
            roles = [m["role"] for m in call.parts.conversation.messages]
            assert roles == ["user", "assistant", "tool", "assistant"]


async def test_tools_and_the_hang_up_work_through_an_llm_fallback_chain(tmp_path: Path):
    # The primary LLM refuses (503): the same generation is re-run on the second one, which
    # books; the result, the goodbye and the hang-up go through the chain like through one LLM.
    script = [
        FakeReply(status=503),
        FakeToolReply(tokens=["Sure."], tool_calls=[FakeToolCall("book_appointment", ANN)]),
        FakeReply(tokens=["Booked,", " BSD-0001."]),
        FakeToolReply(tokens=GOODBYE, tool_calls=[FakeToolCall("end_call", {"reason": "done"})]),
    ]

    def chain(parts):
        llms = [
            create_llm_service(
                base_url=llm.base_url, api_key=None, model="fake", max_tokens=80,
                temperature=0.3, max_retries=0,
            )
            for _ in range(2)
        ]  # fmt: skip
        return LLMFallback(llms, clock=parts.clock)

    async with FakeToolServer(script=script) as llm, FakeTwilioRest() as rest:
        settings = receptionist_settings(llm.base_url, tmp_path, rest.base_url)
        async with PhoneCall(settings, llm=chain) as call:
            rest.call = call
            await call.says("I'm Ann Lee, a cleaning on Tuesday at 2 pm please.")
            await call.plays_out(lambda: "BSD-0001." in heard(call))
            assert [b.confirmation_id for b in call.bot.bookings[CALL_SID]] == ["BSD-0001"]
            assert call.parts.processors["llm"].stats.switches == 1

            await call.says("Thanks, bye.")
            await call.plays_out(lambda: call.run.done())
            assert len(rest.requests) == 1
            assert rest.requests[0].marks_echoed == rest.requests[0].marks_sent
            assert call.tts.spoken[-2:] == ["Thanks for calling,", "goodbye!"]
