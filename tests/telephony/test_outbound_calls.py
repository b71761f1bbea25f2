"""Outbound calls end to end: Twilio (fake) dials, the callee answers, the agent speaks first.

The real server, receptionist pipeline, transport and caller emulator run on loopback; the
providers and Twilio are protocol-faithful fakes (see ``outbound_harness``).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.telephony import outbound_harness
from tests.telephony.accounts import FRONT_DESK, PERSON
from tests.telephony.fake_twilio import Callee
from tests.telephony.outbound_harness import (
    FakeReply,
    FakeToolCall,
    FakeToolReply,
    outbound_stack,
    person,
)
from voiceagent.telephony import place_call, transfer_call
from voiceagent.transports.twilio.rest import TwilioRestClient

pytestmark = pytest.mark.slow

OUTBOUND_GREETING = "Hello, this is the receptionist at Bright Smile Dental calling."
ANSWER = ["Sure,", " we", " are", " calling", " about", " your", " cleaning", "."]


def said(chunks: list[str]) -> list[str]:
    """The words of what was spoken, however the TTS got it in pieces."""
    return "".join(chunks).replace(",", ", ").split()


async def test_a_person_answers_and_the_agent_speaks_first(tmp_path: Path):
    callee = person(tmp_path, "Hello who is calling please")
    async with outbound_stack(
        tmp_path,
        callees={PERSON: callee},
        heard=[["Hello", "who", "is", "calling", "please?"]],
        replies=[FakeReply(tokens=ANSWER)],
        telephony={"outbound_greeting": OUTBOUND_GREETING},
    ) as stack:
        placed = await place_call(stack.settings, PERSON)
        call = await stack.twilio.finished(placed.sid)

    assert call.statuses() == ["initiated", "ringing", "in-progress", "completed"]
    assert all(code == 204 for _, _, code in call.posted), call.posted  # signed, accepted
    report = call.report
    assert report is not None and report.call_sid == placed.sid
    # The agent spoke first: its greeting played before the callee said anything.
    first_line = report.turns[0]
    assert report.agent_utterances_s and report.agent_utterances_s[0] < first_line.caller_start_s
    assert stack.tts.spoken[0].strip() == OUTBOUND_GREETING
    assert first_line.latency_ms is not None  # and answered the callee
    assert said(stack.tts.spoken[1:]) == said(ANSWER)
    # The record: one outbound call, its progress, the agent's verdict, who hung up.
    record = stack.stored(placed.sid)
    assert (record.call.direction, record.call.twilio_status, record.call.end_reason) == (
        "outbound-api",
        "completed",
        "caller_hung_up",
    )
    assert record.call.answered_by == "human"
    assert [(e.status, e.source) for e in record.timeline] == [
        ("initiated", "status_callback"),
        ("ringing", "status_callback"),
        ("in-progress", "status_callback"),
        ("human", "agent"),
        ("completed", "status_callback"),
    ]
    assert record.call.stream_sid and record.call.answered_at is not None


VOICEMAIL = "Hello, this is Bright Smile Dental. Please call us back. Goodbye."
GREETING_WORDS = outbound_harness.GREETING.split()


def played_after(report, t_s: float) -> list[float]:
    """Start times of the agent utterances the callee heard from ``t_s`` on."""
    return [start for start in report.agent_utterances_s if start >= t_s]


async def test_a_machine_answers_the_agent_leaves_a_message_after_the_beep(tmp_path: Path):
    callee = outbound_harness.machine(tmp_path)
    async with outbound_stack(
        tmp_path,
        callees={PERSON: callee},
        heard=[GREETING_WORDS],
        replies=[FakeReply(tokens=["Sorry,", " who", " is", " this?"])],
        telephony={"outbound_greeting": OUTBOUND_GREETING, "voicemail_message": VOICEMAIL},
    ) as stack:
        placed = await place_call(stack.settings, PERSON)
        call = await stack.twilio.finished(placed.sid)

    report = call.report
    assert report is not None
    beep_line = report.turns[1]  # the greeting, then the beep
    assert beep_line.caller_text == "(beep)"
    # The message was spoken once the beep ended, and the callee's machine heard it.
    assert VOICEMAIL in [text.strip() for text in stack.tts.spoken]
    assert not any("who is this" in text for text in stack.tts.spoken)  # no reply to a machine
    after_beep = played_after(report, beep_line.caller_end_s)
    assert after_beep and after_beep[0] - beep_line.caller_end_s < 1.5
    # Then the agent hung up through Twilio's REST API; the machine did not have to.
    assert call.hung_up_by_api and call.updates == [{"Status": "completed"}]
    assert report.duration_s < 14.0  # well before the machine's recording time ran out
    assert call.statuses()[-1] == "completed"
    record = stack.stored(placed.sid)
    assert (record.call.end_reason, record.call.answered_by) == ("voicemail", "machine_end_beep")
    verdicts = [(e.status, e.data["evidence"]) for e in record.timeline if e.source == "agent"]
    assert verdicts[0][0] == "machine_start" and verdicts[0][1] in ("wording", "long_greeting")
    assert verdicts[1:] == [("machine_end_beep", "beep")]
    # The greeting was held while the detector listened, then dropped: it never became a
    # caller turn, and the LLM was never asked to answer a recording.
    assert not [e for e in record.events if e.kind == "caller"]
    assert not stack.llm.requests


async def test_a_machine_answers_and_the_agent_hangs_up_without_a_message(tmp_path: Path):
    callee = outbound_harness.machine(tmp_path)
    async with outbound_stack(
        tmp_path,
        callees={PERSON: callee},
        heard=[GREETING_WORDS],
        telephony={"voicemail_action": "hang_up", "voicemail_message": VOICEMAIL},
    ) as stack:
        placed = await place_call(stack.settings, PERSON)
        call = await stack.twilio.finished(placed.sid)

    report = call.report
    assert report is not None
    assert VOICEMAIL not in [text.strip() for text in stack.tts.spoken]
    assert call.hung_up_by_api and call.updates == [{"Status": "completed"}]
    # Hung up while the greeting still played: it never finished, the beep never came.
    assert report.turns == [] and report.duration_s < 6.0
    record = stack.stored(placed.sid)
    assert (record.call.end_reason, record.call.answered_by) == ("voicemail", "machine_start")


async def test_twilio_amd_finds_the_machine_and_the_message_follows_its_verdict(tmp_path: Path):
    """With Twilio's AMD (``DetectMessageEnd``) the agent waits for ``machine_end_beep``."""
    callee = outbound_harness.machine(tmp_path, amd_delay_s=0.0)
    greeting_s = sum(len(line.pcm8k) / 16000 + line.pause_after_s for line in callee.script)
    callee.amd_delay_s = callee.lead_in_s + greeting_s  # Twilio posts it after the beep
    async with outbound_stack(
        tmp_path,
        callees={PERSON: callee},
        heard=[["Hi,", "this", "is", "Sam."]],  # no tell-tale words: only Twilio knows
        telephony={"machine_detection": "twilio", "voicemail_message": VOICEMAIL},
    ) as stack:
        placed = await place_call(stack.settings, PERSON)
        call = await stack.twilio.finished(placed.sid)

    form = stack.twilio.requests[0][2]
    assert form["MachineDetection"] == "DetectMessageEnd" and form["AsyncAmd"] == "true"
    amd = [(f["AnsweredBy"], code) for _, f, code in call.posted if "AnsweredBy" in f]
    assert amd == [("machine_end_beep", 204)]
    assert VOICEMAIL in [text.strip() for text in stack.tts.spoken]
    assert call.hung_up_by_api
    record = stack.stored(placed.sid)
    assert record.call.end_reason == "voicemail"
    assert ("machine_end_beep", "amd") in [(e.status, e.source) for e in record.timeline]
    # Twilio's verdict is in the timeline once (not again as the agent's echo of it).
    assert [e.status for e in record.timeline].count("machine_end_beep") == 1
    assert not [e for e in record.events if e.kind == "caller"] and not stack.llm.requests


HANDOFF = ["Of", " course,", " I", " am", " transferring", " you", " now."]
TRANSFER = FakeToolCall("transfer_call", {"destination": "front desk"}, id="call_transfer")


def asking_for_a_person(tmp_path: Path, **callee: Any):
    """A call to a person who asks for one; the agent's reply transfers to the front desk."""
    return outbound_stack(
        tmp_path,
        callees={PERSON: person(tmp_path, "Can I talk to a person please", **callee)},
        heard=[["Can", "I", "talk", "to", "a", "person", "please?"]],
        replies=[FakeToolReply(tokens=HANDOFF, tool_calls=[TRANSFER])],
        telephony={"transfer_targets": {"front desk": FRONT_DESK}},
    )


async def test_a_cold_transfer_mid_call_hands_the_callee_to_the_front_desk(tmp_path: Path):
    async with asking_for_a_person(tmp_path, transferred_talk_s=0.5) as stack:
        placed = await place_call(stack.settings, PERSON)
        call = await stack.twilio.finished(placed.sid)

    # The LLM was offered the tool with the configured destination only.
    tools = {t["function"]["name"]: t["function"] for t in stack.llm.requests[0]["tools"]}
    assert tools["transfer_call"]["parameters"]["properties"]["destination"]["enum"] == [
        "front desk"
    ]
    # Twilio got new TwiML for the live call: <Dial> the front desk.
    [update] = call.updates
    dial = ET.fromstring(update["Twiml"]).find("Dial/Number")
    assert dial is not None and dial.text == FRONT_DESK
    assert call.transferred_to == FRONT_DESK and not call.hung_up_by_api
    # ... only after the hand-off sentence had played to the callee.
    report = call.report
    assert report is not None and report.turns[0].latency_ms is not None
    assert said(stack.tts.spoken[1:]) == said(HANDOFF)
    assert report.turns[0].agent_audio_s >= 0.9 * len("".join(HANDOFF)) * 0.015
    # The stream ended (Twilio's stop and our close race), and the call went on with the person.
    assert call.statuses()[-1] == "completed"
    record = stack.stored(placed.sid)
    assert (record.call.end_reason, record.call.twilio_status) == ("transferred", "completed")
    tools = [(e.text, e.data["stage"]) for e in record.events if e.kind == "tool"]
    assert tools == [("transfer_call", "call"), ("transfer_call", "result")]


async def agent_greeted(stack) -> None:
    """Wait until the call streams and the agent has begun its greeting."""
    for _ in range(200):
        if stack.tts.spoken:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the agent never greeted")


async def test_the_library_transfer_of_a_call_this_server_streams_is_recorded(tmp_path: Path):
    callee = person(tmp_path, "Hello who is calling please", tail_s=20.0)
    async with outbound_stack(
        tmp_path,
        callees={PERSON: callee},
        heard=[["Hello", "who", "is", "calling", "please?"]],
        replies=[FakeReply(tokens=ANSWER)],
    ) as stack:
        placed = await place_call(stack.settings, PERSON)
        await agent_greeted(stack)
        await transfer_call(stack.settings, placed.sid, FRONT_DESK, say="Connecting you now.")
        call = await stack.twilio.finished(placed.sid)

    assert call.transferred_to == FRONT_DESK and not call.hung_up_by_api
    assert call.report is not None and not call.report.closed_by_server  # Twilio's stop
    record = stack.stored(placed.sid)
    assert (record.call.end_reason, record.call.twilio_status) == ("transferred", "completed")


async def test_a_refused_transfer_is_apologized_for_and_the_call_goes_on(tmp_path: Path):
    async with asking_for_a_person(tmp_path, tail_s=3.0) as stack:
        placed = await place_call(stack.settings, PERSON)
        stack.twilio.rate_limited = True  # Twilio refuses the update: 429 / 20429
        call = await stack.twilio.finished(placed.sid)

    assert call.transferred_to is None and not call.updates
    failed = stack.settings.telephony.transfer_failed_text
    assert failed in [text.strip() for text in stack.tts.spoken]
    assert call.report is not None and not call.report.closed_by_server  # the callee hung up
    assert stack.stored(placed.sid).call.end_reason == "caller_hung_up"


async def test_calls_that_never_reach_the_agent_are_recorded_with_their_outcome(tmp_path: Path):
    """Busy, no answer, failed, canceled: no stream; the final status says how they ended."""
    numbers = {"busy": "+15550100201", "no-answer": "+15550100202", "failed": "+15550100203"}
    callees = {number: Callee(answer=answer) for answer, number in numbers.items()}
    callees["+15550100204"] = Callee(ring_s=3.0)  # rings until we cancel it
    async with outbound_stack(tmp_path, callees=callees) as stack:
        placed = {
            answer: await place_call(stack.settings, number) for answer, number in numbers.items()
        }
        ringing = await place_call(stack.settings, "+15550100204")
        await asyncio.sleep(0.2)
        rest = TwilioRestClient.from_settings(stack.settings)
        await rest.update_call(ringing.sid, status="canceled")
        for call in [*placed.values(), ringing]:
            await stack.twilio.finished(call.sid)
        await asyncio.sleep(0.2)  # the last callbacks reach the store's thread

    expected = {"busy": "busy", "no-answer": "no_answer", "failed": "failed"}
    for answer, call in placed.items():
        record = stack.stored(call.sid)
        assert (record.call.twilio_status, record.call.end_reason) == (answer, expected[answer])
        assert not record.call.stream_sid and record.call.ended_at is not None
        assert [e.status for e in record.timeline] == ["initiated", "ringing", answer]
    canceled = stack.stored(ringing.sid).call
    assert (canceled.twilio_status, canceled.end_reason) == ("canceled", "canceled")


async def test_the_agent_says_goodbye_and_hangs_up(tmp_path: Path):
    callee = person(tmp_path, "That is all thank you goodbye", tail_s=6.0)
    goodbye = FakeToolReply(
        tokens=["Thanks", " for", " your", " time,", " goodbye!"],
        tool_calls=[FakeToolCall("end_call", {"reason": "callee is done"}, id="call_end")],
    )
    async with outbound_stack(
        tmp_path,
        callees={PERSON: callee},
        heard=[["That", "is", "all", "thank", "you", "goodbye"]],
        replies=[goodbye],
    ) as stack:
        placed = await place_call(stack.settings, PERSON)
        call = await stack.twilio.finished(placed.sid)

    assert call.hung_up_by_api and call.updates == [{"Status": "completed"}]
    assert call.report is not None and "goodbye!" in " ".join(stack.tts.spoken)
    record = stack.stored(placed.sid)
    assert (record.call.end_reason, record.call.twilio_status) == ("agent_hung_up", "completed")


async def test_a_dropped_media_connection_is_an_error(tmp_path: Path):
    callee = person(tmp_path, "Hello who is calling please", drop_stream_after_s=2.5)
    async with outbound_stack(tmp_path, callees={PERSON: callee}) as stack:
        placed = await place_call(stack.settings, PERSON)
        await stack.twilio.finished(placed.sid)
        await asyncio.sleep(0.2)
    assert stack.stored(placed.sid).call.end_reason == "error"


async def test_a_call_live_at_shutdown_is_recorded_as_ended_by_the_server(tmp_path: Path):
    callee = person(tmp_path, "Hello who is calling please", tail_s=30.0)
    async with outbound_stack(tmp_path, callees={PERSON: callee}) as stack:
        placed = await place_call(stack.settings, PERSON)
        for _ in range(200):  # until the stream is up and the agent greeted
            if stack.tts.spoken:
                break
            await asyncio.sleep(0.05)
    record = stack.stored(placed.sid)  # the server stopped with the call still up
    assert record.call.end_reason == "server_shutdown"
    assert record.call.twilio_status == "in-progress"


async def test_a_long_greeting_without_telltale_words_is_still_a_machine(tmp_path: Path):
    """No "leave a message" in what the STT heard: the greeting's length and the beep decide."""
    greeting = (
        "Hi there, this is Sam Taylor speaking on the recording, thanks so much for your call "
        "today, talk to you soon."
    )
    callee = outbound_harness.machine(tmp_path, greeting=greeting)
    async with outbound_stack(
        tmp_path,
        callees={PERSON: callee},
        heard=[["Hi", "there,", "this", "is", "Sam", "Taylor."]],
        telephony={"voicemail_message": VOICEMAIL},
    ) as stack:
        placed = await place_call(stack.settings, PERSON)
        await stack.twilio.finished(placed.sid)

    record = stack.stored(placed.sid)
    verdicts = [(e.status, e.data["evidence"]) for e in record.timeline if e.source == "agent"]
    assert verdicts == [("machine_start", "long_greeting"), ("machine_end_beep", "beep")]
    assert record.call.end_reason == "voicemail"
    assert VOICEMAIL in [text.strip() for text in stack.tts.spoken]
    assert not [e for e in record.events if e.kind == "caller"] and not stack.llm.requests
