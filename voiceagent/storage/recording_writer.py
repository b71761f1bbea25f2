"""The storage-thread half of a call recording: its row, its events and its stereo WAV.

:class:`~voiceagent.storage.recording.CallRecording` queues these jobs on the archive's storage
thread; a failed write is counted (call and archive) and the first one of a call logged with
its call sid. The call itself never notices.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from loguru import logger

from voiceagent.storage.archive import CallArchive
from voiceagent.storage.call_audio import CallAudio, caller_runs
from voiceagent.storage.store import CallEnd, CallEvent, CallInfo, CallStatusUpdate
from voiceagent.transports.twilio.line_format import MULAW_8K, LineFormat

CallerChunk = tuple[float, bytes, int, int]  # arrived at (clock), PCM16, rate, channels


class RecordingWriter:
    """Writes one call's row, events and audio; its jobs run on the storage thread.

    Attributes:
        call_sid: Twilio's call sid, once the call started (for logs).
        t0: The call's start (clock), set before the first job.
        started_wall: The call's start (wall clock), set before the first job.
        audio_path: The call's WAV, once created.
        write_errors: Failed writes of this call.
        agent_line_format: The format of the agent audio frames handed to :meth:`write_audio`.
    """

    def __init__(self, archive: CallArchive, *, record_audio: bool) -> None:
        self._archive = archive
        self._record_audio = record_audio
        self.call_sid: str | None = None
        self.t0: float | None = None
        self.started_wall = 0.0
        self.audio_path: Path | None = None
        self.write_errors = 0
        self.agent_line_format: LineFormat = MULAW_8K
        self._call_id: int | None = None
        self._audio: CallAudio | None = None
        self._error_logged = False

    def failed(self, what: str, error: Exception) -> None:
        """Count a failed write (call and archive); log the call's first one."""
        self.write_errors += 1
        self._archive.count_error()
        if not self._error_logged:
            self._error_logged = True
            logger.error(
                f"call {self.call_sid}: recording: {what} failed: {error!r}; the call goes on "
                "(further recording errors of this call are only counted)"
            )

    def open(self, info: CallInfo) -> None:
        """Create the call's WAV (when recording audio) and its row."""
        if self._record_audio:
            try:
                path = self._archive.audio_path(info.call_sid, info.started_at)
                self._audio = CallAudio(path)
                self.audio_path = path
            except Exception as e:
                self.failed("creating the audio file", e)
        try:
            store = self._archive.store()
            audio_path = str(self.audio_path) if self.audio_path is not None else None
            self._call_id = store.start_call(replace(info, audio_path=audio_path))
        except Exception as e:
            self.failed("storing the call", e)

    def write_events(self, events: list[CallEvent]) -> None:
        """Store events of the call in order, in one transaction (errors: counted per event)."""
        if not events:
            return
        if self._call_id is None:
            self.write_errors += len(events)
            for _ in events:
                self._archive.count_error()
            return
        try:
            self._archive.store().add_events(self._call_id, events)
        except Exception as e:
            kinds = ", ".join(sorted({event.kind for event in events}))
            self.failed(f"storing {len(events)} events ({kinds})", e)

    def write_status(self, update: CallStatusUpdate) -> None:
        """Store a status of the call (who answered)."""
        try:
            self._archive.store().record_status(update)
        except Exception as e:
            self.failed("storing a status", e)

    def write_audio(
        self,
        caller: list[CallerChunk],
        agent: list[tuple[float, bytes]],
        until_s: float | None,
    ) -> None:
        """Place the audio on the call's timeline; write it up to ``until_s`` (None: not yet)."""
        audio, t0 = self._audio, self.t0
        if audio is None or t0 is None:
            return
        try:
            for start_s, pcm, rate, channels in caller_runs(caller, t0):
                audio.add_caller(start_s, pcm, rate, channels)
            line_format = self.agent_line_format
            for play_at, frame in agent:
                audio.add_agent(play_at - t0, frame, line_format)
            if until_s is not None:
                audio.write(until_s)
        except Exception as e:
            self._audio = None
            self.failed("writing audio", e)
            audio.abandon()

    def finish(
        self,
        caller: list[CallerChunk],
        agent: list[tuple[float, bytes]],
        end_s: float,
        reason: str,
    ) -> None:
        """Write the rest of the audio, fix the WAV's length and complete the call's row."""
        self.write_audio(caller, agent, None)
        audio, self._audio = self._audio, None
        seconds = None
        if audio is not None:
            try:
                audio.close(end_s)
                seconds = audio.seconds
            except Exception as e:
                self.failed("closing the audio file", e)
        if self._call_id is None:
            return
        try:
            end = CallEnd(self.started_wall + end_s, reason, seconds, self.write_errors)
            self._archive.store().end_call(self._call_id, end)
        except Exception as e:
            self.failed("completing the call", e)
