"""Settings of what the agent says and does: prompt, greeting, tools; outbound calls and transfers.

The library's defaults are neutral (a generic assistant); the bundled receptionist bot
(:mod:`voiceagent.pipelines.receptionist`) brings its own prompt and greetings wherever these
defaults were left as they are.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from voiceagent.processors.machine_detection import AnsweringMachineParams
from voiceagent.settings.base import Section, provider_alias, split_list

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant speaking with a caller on the phone. Reply in one or two short "
    "spoken sentences, plain words only: no lists, no markdown. If you do not know, say so "
    "briefly."
)
DEFAULT_GREETING = "Hello, how can I help you today?"
DEFAULT_OUTBOUND_GREETING = "Hello, do you have a moment?"
DEFAULT_VOICEMAIL_MESSAGE = "Hello, please call us back at your convenience. Thank you, goodbye."


class AgentSettings(Section):
    """What the agent says and how it replies."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    greeting: str = DEFAULT_GREETING
    """Said when a caller's call is answered ("" for none: the caller speaks first)."""
    max_tokens: int = Field(80, ge=1)
    temperature: float = Field(0.3, ge=0.0, le=2.0)
    tools: Annotated[bool | Literal["auto"] | list[str], NoDecode] = "auto"
    """The bot's tools (the receptionist's: check_availability, book_appointment, end_call):
    True, False, a list of names, or "auto": on with a cloud/OpenAI-compatible LLM, off with the
    local model, which with ``tool_choice=auto`` answers in prose or writes the call as text."""
    tools_prompt: str | None = None
    """Appended to ``system_prompt`` when tools are advertised; None: a sentence naming each
    advertised tool (``voiceagent.pipelines.receptionist_tools.tools_prompt``)."""
    end_call_max_wait_s: float = Field(20.0, gt=0.0)
    """After ``end_call``, the longest wait for the goodbye to play before hanging up."""

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names(cls, value: Any) -> Any:
        """``VOICEAGENT_AGENT__TOOLS=check_availability,end_call`` lists names."""
        if isinstance(value, str) and value.strip().lower() not in ("auto", "true", "false"):
            return split_list(value)
        return value


class TelephonySettings(Section):
    """Outbound calls, answering machines and transfers (see :mod:`voiceagent.telephony`)."""

    from_number: str | None = Field(
        None, validation_alias=provider_alias("from_number", "TWILIO_FROM_NUMBER")
    )
    """The caller id of outbound calls (a Twilio number, E.164); ``TWILIO_FROM_NUMBER``."""
    ring_timeout_s: int = Field(30, ge=5, le=600)
    """How long an outbound call rings before Twilio reports ``no-answer``."""
    outbound_greeting: str = DEFAULT_OUTBOUND_GREETING
    """What the agent says first when the person it called answers."""
    machine_detection: Literal["agent", "twilio", "off"] = "agent"
    """Who tells an answering machine from a person on outbound calls: the agent itself
    (greeting-shaped first utterance, beep, wording), Twilio's AMD (``AsyncAmd``), or nobody."""
    voicemail_action: Literal["leave_message", "hang_up"] = "leave_message"
    """On an answering machine: speak ``voicemail_message`` once the greeting ended, or hang up."""
    voicemail_message: str = DEFAULT_VOICEMAIL_MESSAGE
    answering_machine: AnsweringMachineParams = Field(default_factory=AnsweringMachineParams)
    """Thresholds of the agent's own detector, e.g.
    ``VOICEAGENT_TELEPHONY__ANSWERING_MACHINE__GREETING_START_S=2.5``."""
    amd_timeout_s: int = Field(30, ge=3, le=59)
    """Twilio AMD's ``MachineDetectionTimeout``."""
    transfer_targets: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    """Where ``transfer_call`` may send a caller: name → E.164 number or SIP URI."""
    transfer_caller_id: str | None = None
    """Caller id of the transferred leg (``<Dial callerId>``); None: the caller's own number."""
    transfer_failed_text: str = (
        "I'm sorry, I couldn't transfer your call right now. Can I help you with something else?"
    )
    """Spoken when Twilio refuses a transfer; the conversation goes on."""

    @field_validator("transfer_targets", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        """``VOICEAGENT_TELEPHONY__TRANSFER_TARGETS=front desk=+15550100,billing=sip:b@pbx``."""
        if isinstance(value, str):
            targets = {}
            for item in value.split(","):
                name, sep, target = item.partition("=")
                if item.strip() and not sep:
                    raise ValueError(f"expected NAME=NUMBER, got {item.strip()!r}")
                if item.strip():
                    targets[name.strip()] = target.strip()
            return targets
        return value

    @field_validator("transfer_targets")
    @classmethod
    def _valid_targets(cls, value: dict[str, str]) -> dict[str, str]:
        from voiceagent.telephony.numbers import check_transfer_target

        for name, target in value.items():
            if not name:
                raise ValueError("a transfer target needs a name")
            check_transfer_target(target)
        return value
