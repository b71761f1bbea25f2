"""One call being recorded: its row, its transcript events and its stereo WAV.

Loop side (called by the recorder taps and TwilioOutput, every 20 ms for audio): methods
only append to buffers or queue a job on the archive's storage thread; they never block,
never raise and never log per frame. Every ``flush_interval_s`` the events and the buffered
audio go to the storage thread, which stores the events in one transaction, places the audio
on the call's timeline and appends it to the WAV.

Agent audio is what was *sent to Twilio*, held back until Twilio starts playing it (at most
the output's lead, 200 ms): a ``clear`` on barge-in drops what was sent but never played,
so the recording holds what the caller heard; after a soft clear (the agent paused at the
caller's first sound) the held audio is recorded again when it is sent again. Both clears are
call events (``clear``, ``pause_clear``). Audio the TTS made but that was dropped
before it was sent never reaches the recording at all.

The end reason (``voiceagent.telephony.EndReason``) is the agent's own when it declared one
before the transport went away (it hung up, transferred, left a voicemail), else the way the
stream ended (Twilio's ``stop``: the other party hung up; our shutdown; an error).

Write errors (disk full, permissions) are counted; the first one of a call is logged with
its call sid. The call itself never notices. The storage-thread jobs:
:mod:`voiceagent.storage.recording_writer`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from loguru import logger

from voiceagent.clock import Clock
from voiceagent.storage.archive import CallArchive
from voiceagent.storage.recording_writer import CallerChunk, RecordingWriter
from voiceagent.storage.store import CallEvent, CallInfo, CallStatusUpdate, EventKind
from voiceagent.telephony.end_reason import from_transport
from voiceagent.transports.twilio.line_format import LineFormat

MAX_EARLY_EVENTS = 20
"""Events before the call's start (a provider failing at once) kept until the start."""
HORIZON_MARGIN_S = 0.25
"""A flush writes audio up to this long before now (later chunks may still arrive)."""
CLOSE_WAIT_S = 5.0
"""How long closing waits for the storage thread before letting the call go."""


class CallRecording:
    """Records one call into a :class:`~voiceagent.storage.archive.CallArchive`.

    Attributes:
        call_sid: Twilio's call sid, once the call started.
        stream_origin: Reads when (clock time) the caller's stream started, as the transport
            estimates it (set by ``recorder_taps``); stored at the end as a ``stream`` event
            so the call's timeline can be put on the stream clock.
    """

    def __init__(self, archive: CallArchive, *, clock: Clock) -> None:
        self._archive = archive
        self._clock = clock
        settings = archive.settings
        self._flush_interval_s = settings.flush_interval_s
        self._record_audio = settings.record_audio
        self._writer = RecordingWriter(archive, record_audio=self._record_audio)
        self.call_sid: str | None = None
        self.stream_origin: Callable[[], float | None] | None = None
        self._t0: float | None = None
        self._caller: list[CallerChunk] = []
        self._agent_pending: deque[tuple[float, bytes]] = deque()
        self._agent_started: dict[int, float] = {}
        self._tools_seen: set[tuple[str, str]] = set()
        self._events: list[CallEvent] = []
        """Events not yet handed to the storage thread (before the start: provider switches)."""
        self._ended_at: float | None = None
        self._end_reason = "ended"
        self._declared: str | None = None
        self._account_sid = ""
        self._playback_cutoff: float | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None

    @property
    def started(self) -> bool:
        """Whether the call started (Twilio's ``start``)."""
        return self._t0 is not None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closing is not None

    @property
    def audio_path(self) -> Path | None:
        """The call's WAV, once created (storage thread)."""
        return self._writer.audio_path

    @property
    def write_errors(self) -> int:
        """Failed writes of this call."""
        return self._writer.write_errors

    @property
    def agent_line_format(self) -> LineFormat:
        """The format of the agent audio reported by :meth:`agent_audio`.

        The stream's; set by ``recorder_taps`` from the output.
        """
        return self._writer.agent_line_format

    @agent_line_format.setter
    def agent_line_format(self, line_format: LineFormat) -> None:
        self._writer.agent_line_format = line_format

    # -- loop side: the call's events ------------------------------------------------------

    def start(
        self,
        *,
        call_sid: str,
        stream_sid: str,
        account_sid: str = "",
        parameters: dict[str, str] | None = None,
    ) -> None:
        """The call started: create its row and WAV; record from now on."""
        if self._t0 is not None or self.closed:
            return
        self._t0 = self._clock.now()
        self.call_sid = call_sid or stream_sid or "unknown"
        writer = self._writer  # set before its first job is queued
        writer.call_sid, writer.t0, writer.started_wall = self.call_sid, self._t0, time.time()
        self._account_sid = account_sid
        params = dict(parameters or {})
        info = CallInfo(
            call_sid=self.call_sid,
            stream_sid=stream_sid,
            started_at=writer.started_wall,
            account_sid=account_sid,
            from_number=params.get("From", ""),
            to_number=params.get("To", ""),
            parameters=params,
            direction=params.get("Direction") or "inbound",
        )
        self._submit(writer.open, info)
        self.flush_events()  # what happened before the start, at 0 s
        self._flusher = asyncio.get_running_loop().create_task(
            self._flush_every(), name=f"recording-{self.call_sid}"
        )

    def caller_audio(self, pcm: bytes, sample_rate: int, channels: int) -> None:
        """A chunk of the caller's audio arrived (per frame: an append, nothing more)."""
        if self._t0 is not None and self._record_audio and self._closing is None:
            self._caller.append((self._clock.now(), pcm, sample_rate, channels))

    def agent_audio(self, turn_id: int, audio: bytes, play_at: float) -> None:
        """TwilioOutput sent 20 ms of agent audio, played from ``play_at`` (clock)."""
        t0 = self._t0
        if t0 is None or self._closing is not None:
            return
        if turn_id not in self._agent_started:
            self._agent_started[turn_id] = play_at - t0
            now = self._clock.now() - t0
            data = {"play_at_s": play_at - t0}
            self._event(CallEvent("agent_audio", now, turn_id=turn_id, data=data))
        if self._record_audio:
            self._agent_pending.append((play_at, audio))

    def agent_cleared(self, at: float) -> None:
        """A barge-in ``clear`` at ``at``: what Twilio had not started playing never played."""
        dropped = self._drop_unplayed(at)
        if self._t0 is not None:
            self._event(CallEvent("clear", at - self._t0, data={"frames_dropped": dropped}))

    def agent_paused(self, at: float, held_s: float) -> None:
        """A soft ``clear`` at ``at``: the agent paused; ``held_s`` of its audio is sent again."""
        dropped = self._drop_unplayed(at)  # what is sent again is reported again, with its time
        if self._t0 is not None:
            data = {"held_s": round(held_s, 3), "frames_dropped": dropped}
            self._event(CallEvent("pause_clear", at - self._t0, data=data))

    def _drop_unplayed(self, at: float) -> int:
        """Forget agent audio that would have played from ``at`` on; returns how many frames."""
        pending = self._agent_pending
        dropped = 0
        while pending and pending[-1][0] >= at:
            pending.pop()
            dropped += 1
        return dropped

    def agent_mark(self, name: str, at: float) -> None:
        """TwilioOutput sent mark ``name`` at ``at`` (clock)."""
        if self._t0 is not None:
            self._event(CallEvent("mark_sent", at - self._t0, text=name))

    def timeline_event(
        self,
        kind: EventKind,
        at: float | None = None,
        *,
        turn_id: int | None = None,
        text: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        """One event of the call's timeline at clock time ``at`` (default now); never blocks."""
        t0 = self._t0
        if t0 is None:
            return
        at_s = (self._clock.now() if at is None else at) - t0
        self._event(CallEvent(kind, at_s, turn_id=turn_id, text=text, data=data or {}))

    def caller_turn(
        self, turn_id: int, text: str, data: dict[str, Any], *, at: float | None = None
    ) -> None:
        """The caller's utterance was committed (at clock time ``at``; default now)."""
        when = self._at() if at is None or self._t0 is None else at - self._t0
        self._event(CallEvent("caller", when, turn_id=turn_id, text=text, data=data))

    def caller_revised(self, turn_id: int, text: str) -> None:
        """A later transcript of caller turn ``turn_id``'s audio changed its words."""
        self._event(CallEvent("revision", self._at(), turn_id=turn_id, text=text))

    def agent_turn(
        self,
        turn_id: int,
        heard: str,
        full_text: str,
        *,
        interrupted: bool,
        unheard: str = "",
        in_context: bool = True,
    ) -> None:
        """An agent turn finished playing or was cut: what was heard of what was meant."""
        data: dict[str, Any] = {"started_s": self._agent_started.pop(turn_id, None)}
        if unheard:
            data["unheard_text"] = unheard
        if not in_context:
            data["in_context"] = False
        self._event(
            CallEvent(
                "agent",
                self._at(),
                turn_id=turn_id,
                text=heard,
                full_text=full_text,
                interrupted=interrupted,
                data=data,
            )
        )

    def turn_metrics(self, turn_id: int, data: dict[str, Any]) -> None:
        """The turn-taking figures of caller turn ``turn_id``."""
        self._event(CallEvent("metrics", self._at(), turn_id=turn_id, data=dict(data)))

    def tool_call(self, stage: str, name: str, call_id: str, data: dict[str, Any]) -> None:
        """A tool call started (``stage="call"``) or returned (``"result"``); once per stage."""
        key = (stage, call_id)
        if key in self._tools_seen:
            return
        self._tools_seen.add(key)
        payload = {"stage": stage, "tool_call_id": call_id, **data}
        self._event(CallEvent("tool", self._at(), text=name, data=payload))

    def provider_switch(self, stage: str, failed: str, serving: str, reason: str) -> None:
        """A stage's provider failed; ``serving`` took over (empty: no provider left)."""
        data = {"failed": failed, "serving": serving, "reason": reason}
        event = CallEvent("provider", self._at(), text=stage, data=data)
        if self._t0 is None and not self.closed:
            if len(self._events) < MAX_EARLY_EVENTS:
                self._events.append(event)  # written once the call starts
            return
        self._event(event)

    def declare_end_reason(self, reason: str) -> None:
        """The agent ends the call for ``reason`` (``""`` withdraws it: the action failed).

        Ignored once the stream is gone: the call ended some other way first.
        """
        if self._playback_cutoff is None:
            self._declared = reason or None

    def answered_by(self, answered_by: str, evidence: str) -> None:
        """The agent decided who answered (``human``, ``machine_start``, ``machine_end_beep``…)."""
        if self._t0 is None or self._closing is not None or not self.call_sid:
            return
        update = CallStatusUpdate(
            call_sid=self.call_sid,
            status=answered_by,
            at=time.time(),
            source="agent",
            data={"evidence": evidence, "at_s": round(self._at(), 3)},
        )
        self._submit(self._writer.write_status, update)

    def mark_ended(self, reason: str, *, transport_gone: bool = False) -> None:
        """The call is ending (the first reason wins); ``transport_gone``: nothing more plays."""
        if self._ended_at is not None:
            return
        self._ended_at = self._clock.now()
        self._end_reason = reason
        if transport_gone:
            self._playback_cutoff = self._ended_at

    async def close(self) -> None:
        """Write the rest of the audio, fix the WAV, complete the call's row. Idempotent."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_future()
            try:
                await self._close()
            finally:
                self._closing.set_result(None)
        else:
            await asyncio.shield(self._closing)

    async def _close(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
        t0 = self._t0
        if t0 is None:
            return
        now = self._clock.now()
        origin = self._read_stream_origin()
        if origin is not None:
            self._events.append(CallEvent("stream", now - t0, data=origin))
        self.flush_events()
        if self._ended_at is None:
            self._ended_at = now
        cutoff = self._playback_cutoff if self._playback_cutoff is not None else now
        caller, agent = self._take_audio(cutoff)
        self._agent_pending.clear()
        end_s = self._ended_at - t0
        twilio = bool(self._account_sid)  # the softphone's browser calls name no Twilio account
        reason = self._declared or from_transport(self._end_reason, twilio=twilio).value
        job = self._submit(self._writer.finish, caller, agent, end_s, reason)
        if job is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job)), CLOSE_WAIT_S)
        except TimeoutError:
            logger.warning(
                f"call {self.call_sid}: the recording is still being written after "
                f"{CLOSE_WAIT_S:.0f} s; it finishes in the background"
            )

    # -- loop side: internals ------------------------------------------------------------

    def _submit(self, job: Callable[..., None], *args: Any) -> Future[None] | None:
        """Queue a storage job; None (counted, logged once) when the archive is closed."""
        try:
            return self._archive.submit(job, *args)
        except RuntimeError as e:  # the archive's thread was shut down
            self._writer.failed("queueing a write", e)
            return None

    def _read_stream_origin(self) -> dict[str, float] | None:
        read, t0 = self.stream_origin, self._t0
        if read is None or t0 is None:
            return None
        try:
            origin = read()
        except Exception as e:  # a transport's bug must not lose the recording
            logger.warning(f"call {self.call_sid}: reading the stream origin failed: {e!r}")
            return None
        return None if origin is None else {"origin_s": origin - t0}

    def _at(self) -> float:
        return 0.0 if self._t0 is None else self._clock.now() - self._t0

    def _event(self, event: CallEvent) -> None:
        # Kept until the next flush: one transaction per call and flush, not per event (a
        # live call makes several events a second; a crash loses at most flush_interval_s).
        if self._t0 is not None and self._closing is None:
            self._events.append(event)

    def flush_events(self) -> None:
        """Hand the events kept so far to the storage thread (the archive's close calls this)."""
        if self._events and self._t0 is not None:
            events, self._events = self._events, []
            self._submit(self._writer.write_events, events)

    def _take_audio(self, played_by: float) -> tuple[list[CallerChunk], list[tuple[float, bytes]]]:
        """The buffered caller chunks, and the agent frames Twilio started playing by then."""
        caller, self._caller = self._caller, []
        pending = self._agent_pending
        agent = []
        while pending and pending[0][0] <= played_by:
            agent.append(pending.popleft())
        return caller, agent

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval_s)
            self.flush()

    def flush(self) -> None:
        """Hand the audio buffered so far to the storage thread."""
        if self._t0 is None or self._closing is not None:
            return
        self.flush_events()
        now = self._clock.now()
        caller, agent = self._take_audio(now)
        until_s = now - self._t0 - HORIZON_MARGIN_S
        self._submit(self._writer.write_audio, caller, agent, until_s)
