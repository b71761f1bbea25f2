"""The bundled bot: a dental-office receptionist on the offline default or cloud providers.

The library's defaults are neutral; the receptionist brings its own prompt, greeting, outbound
greeting and voicemail message wherever the settings left the library's (``receptionist_settings``).
``ReceptionistBot`` owns the shared resources and is the server's pipeline factory. With tools
on (``settings.agent.tools``), each call gets a ``ReceptionDesk``: ``check_availability``,
``book_appointment`` and ``end_call`` on the office's shared ``AppointmentBook``; the bot keeps
every call's bookings in ``bookings`` (by call sid). With ``telephony.transfer_targets`` and
Twilio REST credentials configured, ``transfer_call`` hands the caller to one of those people.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.frames import AgentHeardFrame, UserTurnCommittedFrame
from voiceagent.pipelines.builder import CallParts, StageFactory, build_call_processors
from voiceagent.pipelines.receptionist_tools import (
    TOOL_NAMES,
    AppointmentBook,
    BookingConfirmation,
    ReceptionDesk,
    receptionist_tools,
    tools_prompt,
)
from voiceagent.pipelines.resources import AgentResources
from voiceagent.processors.hang_up import CallHangUp
from voiceagent.settings import (
    DEFAULT_GREETING,
    DEFAULT_OUTBOUND_GREETING,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_VOICEMAIL_MESSAGE,
    Settings,
)
from voiceagent.telephony.transfer import TRANSFER_HINT, TransferDesk
from voiceagent.transports.twilio.rest import TwilioRestClient

TRANSFER_TOOL = "transfer_call"
MAX_LEDGER_CALLS = 1000
"""Calls whose bookings the bot keeps in memory (oldest forgotten first)."""

TranscriptCallback = Callable[[str, str, dict[str, Any]], None]

RECEPTIONIST_PROMPT = (
    "You are the receptionist of Bright Smile Dental, speaking with a caller on the phone. "
    "Reply in one or two short spoken sentences, plain words only: no lists, no markdown. "
    "Begin every reply with a brief acknowledgement such as 'Sure,' or 'Of course,' or "
    "'I see,' and then answer. Office facts: open Monday to Thursday 8 am to 5 pm and "
    "Friday 8 am to 3 pm; a teeth cleaning costs 120 dollars without insurance; next "
    "Tuesday we have openings at 2 pm and 4 pm; the office is at 42 Main Street. "
    "Offer to book an appointment when it helps. If you do not know, say so briefly."
)
RECEPTIONIST_GREETING = "Hello, thanks for calling Bright Smile Dental. How can I help you today?"
RECEPTIONIST_OUTBOUND_GREETING = (
    "Hello, this is the receptionist at Bright Smile Dental calling. Do you have a moment?"
)
RECEPTIONIST_VOICEMAIL_MESSAGE = (
    "Hello, this is Bright Smile Dental calling about your appointment. Please call us "
    "back at your convenience. Thank you, goodbye."
)


def receptionist_settings(settings: Settings) -> Settings:
    """``settings`` with the receptionist's words wherever the library's neutral ones are left.

    A prompt or greeting the user set (through the environment or in code) is kept.
    """
    agent, telephony = settings.agent, settings.telephony
    said = {
        "system_prompt": (agent.system_prompt, DEFAULT_SYSTEM_PROMPT, RECEPTIONIST_PROMPT),
        "greeting": (agent.greeting, DEFAULT_GREETING, RECEPTIONIST_GREETING),
    }
    dialled = {
        "outbound_greeting": (
            telephony.outbound_greeting,
            DEFAULT_OUTBOUND_GREETING,
            RECEPTIONIST_OUTBOUND_GREETING,
        ),
        "voicemail_message": (
            telephony.voicemail_message,
            DEFAULT_VOICEMAIL_MESSAGE,
            RECEPTIONIST_VOICEMAIL_MESSAGE,
        ),
    }
    update: dict[str, Any] = {}
    for section, model, words in (("agent", agent, said), ("telephony", telephony, dialled)):
        ours = {name: own for name, (value, neutral, own) in words.items() if value == neutral}
        if ours:
            update[section] = model.model_copy(update=ours)
    return settings.model_copy(update=update) if update else settings


class TranscriptTap(FrameProcessor):
    """Reports committed caller turns and heard agent turns to a callback (live transcripts)."""

    def __init__(self, call: Any, callback: TranscriptCallback, **kwargs) -> None:
        super().__init__(**kwargs)
        self._call = call
        self._callback = callback

    @property
    def _call_sid(self) -> str:
        return getattr(self._call, "call_sid", None) or "?"

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Forward everything; report the turn frames."""
        await super().process_frame(frame, direction)
        if isinstance(frame, UserTurnCommittedFrame):
            self._callback(
                "caller",
                frame.text,
                {
                    "call_sid": self._call_sid,
                    "turn": frame.turn_id,
                    "speculative_hit": frame.speculative_hit,
                    "reason": frame.reason,
                    "revision": frame.revision,
                },
            )
        elif isinstance(frame, AgentHeardFrame) and frame.full_text:
            self._callback(
                "agent",
                frame.text,
                {
                    "call_sid": self._call_sid,
                    "turn": frame.turn_id,
                    "interrupted": frame.interrupted,
                    "full_text": frame.full_text,
                },
            )
        await self.push_frame(frame, direction)


class ReceptionistBot:
    """Shared resources + one pipeline per call."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_transcript: TranscriptCallback | None = None,
        on_call_built: Callable[[Any, CallParts], None] | None = None,
        overrides: dict[str, StageFactory] | None = None,
        clock: Clock = DEFAULT_CLOCK,
    ) -> None:
        """Create the bot (nothing loads until :meth:`start`).

        Args:
            settings: The configuration.
            on_transcript: Told each committed caller turn and heard agent turn.
            on_call_built: Told each call's ``CallParts`` once built.
            overrides: Stage factories replacing the defaults on every call (see ``STAGES``).
            clock: Time source of every call's turn logic.

        Raises:
            ValueError: ``agent.tools`` names an unknown tool.
        """
        self.settings = receptionist_settings(settings)
        self._overrides = overrides
        self._clock = clock
        self.resources = AgentResources(self.settings)
        self._on_transcript = on_transcript
        self.on_call_built = on_call_built
        """Told each call's ``CallParts`` (context, processors by stage) once built."""
        self.appointments = AppointmentBook()
        """The office's calendar, shared by all calls."""
        self.bookings: OrderedDict[str, list[BookingConfirmation]] = OrderedDict()
        """Bookings made, by call sid (the most recent ``MAX_LEDGER_CALLS`` calls)."""
        self.tool_names = self._tool_names()
        """The desk's tools advertised to the LLM on every call (may be empty)."""
        self.transfer_offered = self._transfer_offered()
        """Whether ``transfer_call`` is advertised too."""

    def _tool_names(self) -> tuple[str, ...]:
        wanted = self.settings.agent.tools
        llm = self.resources.choice.llm
        if wanted == "auto":
            if llm == "local":
                logger.info(
                    "agent tools off: the local Qwen2.5-Coder-0.5B does not call tools reliably "
                    "(set VOICEAGENT_AGENT__TOOLS=true to advertise them anyway)"
                )
                return ()
            return TOOL_NAMES
        if wanted is True:
            return TOOL_NAMES
        if wanted is False:
            return ()
        unknown = sorted(set(wanted) - {*TOOL_NAMES, TRANSFER_TOOL})
        if unknown:
            raise ValueError(
                f"agent.tools names unknown tool(s) {unknown}; tools are "
                f"{[*TOOL_NAMES, TRANSFER_TOOL]}"
            )
        return tuple(name for name in TOOL_NAMES if name in wanted)

    def _transfer_offered(self) -> bool:
        wanted = self.settings.agent.tools
        if isinstance(wanted, list):
            asked = TRANSFER_TOOL in wanted
        else:
            asked = wanted is True or (wanted == "auto" and self.resources.choice.llm != "local")
        if not asked or not self.settings.telephony.transfer_targets:
            return False
        if TwilioRestClient.from_settings(self.settings) is None:
            logger.warning(
                "transfer_call off: transfers need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
            )
            return False
        return True

    def _call_settings(self, settings: Settings) -> Settings:
        """``settings`` in the receptionist's words, the tools' sentence appended to the prompt."""
        settings = receptionist_settings(settings)
        agent = settings.agent
        extra = agent.tools_prompt
        if extra is None:
            extra = tools_prompt(self.tool_names)
            if self.transfer_offered:
                hint = f"You can also use {TRANSFER_HINT}."
                extra = f"{extra} {hint}" if extra else hint
        if not (self.tool_names or self.transfer_offered) or not extra:
            return settings
        prompt = f"{agent.system_prompt} {extra}"
        return settings.model_copy(
            update={"agent": agent.model_copy(update={"system_prompt": prompt})}
        )

    async def start(self, progress: Callable[[str], None] | None = None) -> None:
        """Load models / start the local LLM server (warmed with the tools when advertised)."""
        await self.resources.start(progress)
        llama = self.resources.llama
        if llama is not None and (self.tool_names or self.transfer_offered):
            desk = ReceptionDesk(self.appointments)
            registry = receptionist_tools(desk, self.tool_names)
            if self.transfer_offered:
                registry.add(self._transfer_desk(CallHangUp()).tool())
            tools = registry.openai_tools()
            prompt = self._call_settings(self.settings).agent.system_prompt
            await llama.warm_up(prompt, tools=tools)

    async def stop(self) -> None:
        """Stop child processes."""
        await self.resources.stop()

    async def __call__(self, call: Any, settings: Settings) -> list[FrameProcessor]:
        """The server's pipeline factory: the processors between serializer and output."""
        extra = None
        if self._on_transcript is not None:
            extra = {"turns": [TranscriptTap(call, self._on_transcript)]}
        processors, parts = build_call_processors(
            self._call_settings(settings),
            self.resources,
            clock=self._clock,
            overrides=self._overrides,
            extra=extra,
        )
        if self.tool_names or self.transfer_offered:
            self._give_tools(call, parts)
        if self.on_call_built is not None:
            self.on_call_built(call, parts)
        return processors

    def _give_tools(self, call: Any, parts: CallParts) -> None:
        """Register this call's desk tools on its LLM and advertise them in its context."""
        llm = parts.processors.get("llm")
        if not hasattr(llm, "register_tools"):
            logger.warning(
                f"agent tools off for this call: the llm stage ({type(llm).__name__}) "
                "cannot register tools"
            )
            return
        hang_up = parts.processors.get("hang_up")
        desk = ReceptionDesk(
            self.appointments,
            call_sid=lambda: getattr(call, "call_sid", None) or "",
            hang_up=hang_up.request if isinstance(hang_up, CallHangUp) else None,
            on_booked=self._record_booking,
        )
        registry = receptionist_tools(desk, self.tool_names)
        if self.transfer_offered and isinstance(hang_up, CallHangUp):
            registry.add(self._transfer_desk(hang_up, lambda: llm).tool())
        parts.conversation.tools = llm.register_tools(registry)

    def _transfer_desk(self, hang_up: CallHangUp, speak_via=None) -> TransferDesk:
        telephony = self.settings.telephony
        rest = TwilioRestClient.from_settings(self.settings)
        assert rest is not None  # checked by _transfer_offered
        return TransferDesk(
            telephony.transfer_targets,
            rest=rest,
            hang_up=hang_up,
            caller_id=telephony.transfer_caller_id,
            failed_text=telephony.transfer_failed_text,
            speak_via=speak_via,
        )

    def _record_booking(self, booking: BookingConfirmation) -> None:
        self.bookings.setdefault(booking.call_sid, []).append(booking)
        self.bookings.move_to_end(booking.call_sid)
        while len(self.bookings) > MAX_LEDGER_CALLS:
            self.bookings.popitem(last=False)
