"""Outbound calls end to end: Twilio (fake) dials, the callee answers, the agent speaks first.

The real server, receptionist pipeline, transport and caller emulator run on loopback; the
providers and Twilio are protocol-faithful fakes (see ``outbound_harness``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fakes.fake_openai import FakeReply  # noqa: E402  (path set by outbound_harness)
from fakes.fake_openai_tools import FakeToolCall, FakeToolReply  # noqa: E402

from tests.telephony import outbound_harness
from tests.telephony.accounts import FRONT_DESK, PERSON
from tests.telephony.outbound_harness import outbound_stack, person
from voiceagent.telephony import place_call

pytestmark = pytest.mark.slow

OUTBOUND_GREETING = "Hello, this is the receptionist at Bright Smile Dental calling."
ANSWER = ["Sure,", " we", " are", " calling", " about", " your", " cleaning", "."]


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
    assert "".join(stack.tts.spoken[1:]).strip() == "".join(ANSWER)


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


HANDOFF = ["Of", " course,", " I", " am", " transferring", " you", " now."]
TRANSFER = FakeToolCall("transfer_call", {"destination": "front desk"}, id="call_transfer")


async def test_a_cold_transfer_mid_call_hands_the_callee_to_the_front_desk(tmp_path: Path):
    callee = person(tmp_path, "Can I talk to a person please", transferred_talk_s=0.5)
    async with outbound_stack(
        tmp_path,
        callees={PERSON: callee},
        heard=[["Can", "I", "talk", "to", "a", "person", "please?"]],
        replies=[FakeToolReply(tokens=HANDOFF, tool_calls=[TRANSFER])],
        telephony={"transfer_targets": {"front desk": FRONT_DESK}},
    ) as stack:
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
    assert "".join(stack.tts.spoken[1:]).strip() == "".join(HANDOFF)
    assert report.turns[0].agent_audio_s >= 0.9 * len("".join(HANDOFF)) * 0.015
    # The stream ended (Twilio stopped it), and the call went on with the person.
    assert not report.closed_by_server
    assert call.statuses()[-1] == "completed"


async def test_a_refused_transfer_is_apologized_for_and_the_call_goes_on(tmp_path: Path):
    callee = person(tmp_path, "Can I talk to a person please", tail_s=3.0)
    async with outbound_stack(
        tmp_path,
        callees={PERSON: callee},
        heard=[["Can", "I", "talk", "to", "a", "person", "please?"]],
        replies=[FakeToolReply(tokens=HANDOFF, tool_calls=[TRANSFER])],
        telephony={"transfer_targets": {"front desk": FRONT_DESK}},
    ) as stack:
        placed = await place_call(stack.settings, PERSON)
        stack.twilio.rate_limited = True  # Twilio refuses the update: 429 / 20429
        call = await stack.twilio.finished(placed.sid)

    assert call.transferred_to is None and not call.updates
    failed = stack.settings.telephony.transfer_failed_text
    assert failed in [text.strip() for text in stack.tts.spoken]
    assert call.report is not None and not call.report.closed_by_server  # the callee hung up
