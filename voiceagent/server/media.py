"""The Media Streams WebSocket: one isolated pipecat pipeline per phone call.

After the upgrade (checks: :mod:`voiceagent.server.app`), one :class:`MediaCall` owns the socket,
a :class:`TwilioCall` and a ``PipelineWorker`` running
``[call.serializer, *factory(call, settings), metrics tap, call.output]`` (the tap feeds the
server's turn metrics, :mod:`voiceagent.server.turn_metrics`; the recorder's taps go right after
the serializer and right before the metrics tap, and a ``TimelineObserver`` is added, when calls
are archived). Incoming messages are fed (by an
:class:`~voiceagent.server.media_inbound.InboundReader`) only once the pipeline has started
(processors drop frames before ``StartFrame``); until then they wait, in order, in aiohttp's
bounded reader buffer. Whatever goes wrong inside one call is logged with its call sid, counted,
and ends that call only.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, web
from loguru import logger
from pipecat.frames.frames import EndFrame, ErrorFrame, Frame
from pipecat.observers.base_observer import BaseObserver
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.workers.runner import WorkerRunner

from voiceagent.processors.recorder import recorder_taps
from voiceagent.server.call_worker import CallWorker
from voiceagent.server.media_inbound import (  # noqa: F401  (re-exported)
    MAX_DROPPED_MESSAGES,
    MIN_HARD_CAP_BYTES,
    InboundReader,
    ws_hard_cap,
)
from voiceagent.server.metrics import ServerMetrics
from voiceagent.settings import Settings
from voiceagent.storage.archive import CallArchive
from voiceagent.storage.recording import CallRecording
from voiceagent.timeline.observer import TimelineObserver
from voiceagent.transports.twilio.call import TwilioCall

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

PipelineFactory = Callable[[TwilioCall, Settings], Awaitable[list[FrameProcessor]]]
"""Builds the processors between ``call.serializer`` and ``call.output`` for one call."""

PIPELINE_END_TIMEOUT_S = 3.0
"""How long an ended pipeline may take to flush before it is cancelled."""
PIPELINE_CANCEL_TIMEOUT_S = 2.0
WS_CLOSE_TIMEOUT_S = 2.0
_LOGGED_PIPELINE_ERRORS = 3
CALL_WIND_DOWN_S = PIPELINE_END_TIMEOUT_S + PIPELINE_CANCEL_TIMEOUT_S + 2 * WS_CLOSE_TIMEOUT_S
"""The longest a call takes to end once asked (pipeline end, cancel, socket close)."""

_call_ids = itertools.count(1)


class MediaCall:
    """One phone call: its socket, its ``TwilioCall`` and its pipeline worker.

    Another kind of leg on the same protocol (the browser softphone,
    :mod:`voiceagent.server.phone`) overrides :meth:`make_transport` and :meth:`observers`.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        settings: Settings,
        factory: PipelineFactory,
        metrics: ServerMetrics,
        archive: CallArchive | None = None,
        mailbox: Callable[[str], list[Frame]] | None = None,
    ) -> None:
        self._ws = ws
        self._mailbox = mailbox
        self._settings = settings
        self._factory = factory
        self._metrics = metrics
        self._archive = archive
        self._recording: CallRecording | None = None
        self._id = next(_call_ids)
        self._max_bytes = settings.server.max_message_bytes
        self._call: TwilioCall | None = None
        self._worker: PipelineWorker | None = None
        self._runner: WorkerRunner | None = None
        self._runner_task: asyncio.Task[None] | None = None
        self._reader_task: asyncio.Task[str] | None = None
        self._mail_task: asyncio.Task[None] | None = None
        self._inbound: InboundReader | None = None
        self._started = asyncio.Event()
        self._end_requested = asyncio.Event()
        self._finished = asyncio.Event()
        self._ended_by = "unknown"
        self._protocol_errors = 0
        self._pipeline_errors = 0
        self._t0 = time.monotonic()

    # --- ActiveCall (registry) -------------------------------------------------------------

    @property
    def label(self) -> str:
        """The call sid once Twilio sent ``start``, else a local number."""
        sid = self._call.call_sid if self._call is not None else None
        return sid or f"#{self._id}"

    @property
    def frames_in(self) -> int:
        """Media messages received so far."""
        return self._call.frames_in if self._call is not None else 0

    @property
    def frames_out(self) -> int:
        """Media messages sent so far."""
        return self._call.frames_out if self._call is not None else 0

    @property
    def finished(self) -> asyncio.Event:
        """Set once the pipeline is done and the socket closed."""
        return self._finished

    @property
    def twilio_call(self) -> TwilioCall | None:
        """The transport of this call (None until the call began)."""
        return self._call

    async def deliver(self, frame: Frame) -> bool:
        """Queue ``frame`` at the start of the call's pipeline; False before the call started."""
        call, worker = self._call, self._worker
        if call is None or worker is None or not call.started.is_set() or self._finished.is_set():
            return False
        await worker.queue_frame(frame)
        return True

    async def end(self, reason: str) -> None:
        """Ask the call to end now: EndFrame to its pipeline, then close the socket 1001."""
        self.request_end(reason)
        await self._finished.wait()

    def request_end(self, reason: str) -> None:
        """Like :meth:`end`, without waiting."""
        if not self._end_requested.is_set():
            logger.info(f"call {self.label}: ending ({reason})")
            self._end_requested.set()

    # --- hooks for other legs --------------------------------------------------------------

    def make_transport(self) -> TwilioCall:
        """The call's transport (a Twilio Media Stream: 8 kHz μ-law, Twilio's identities)."""
        server = self._settings.server
        return TwilioCall(
            self._send_text,
            settings=self._settings.transport,
            on_protocol_error=self._on_protocol_error,
            max_message_bytes=server.max_message_bytes,
            max_messages_per_s=server.max_messages_per_s,
        )

    def observers(self, call: TwilioCall) -> list[BaseObserver]:
        """Pipecat observers of the call's pipeline (none for a Twilio call)."""
        return []

    # --- the call ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the call until the caller hangs up, Twilio stops it, the agent ends or we do."""
        self._metrics.call_started()
        try:
            await self._run()
        except asyncio.CancelledError:
            if self._ended_by == "unknown":
                self._ended_by = "cancelled"
            raise
        except Exception as e:
            self._ended_by = "error"
            self._metrics.call_failed()
            logger.opt(exception=e).error(f"call {self.label}: failed: {e!r}")
            await self._close(WSCloseCode.INTERNAL_ERROR, "internal error")
        finally:
            await self._teardown()
            if self._recording is not None:
                await _shielded(self._recording.close())
            seconds = time.monotonic() - self._t0
            self._metrics.call_finished(self, seconds=seconds, ended_by=self._ended_by)
            logger.info(
                f"call {self.label}: ended by {self._ended_by} after {seconds:.1f} s "
                f"(frames in {self.frames_in}, out {self.frames_out}, protocol errors "
                f"{self._protocol_errors}, pipeline errors {self._pipeline_errors})"
            )
            self._finished.set()

    async def _run(self) -> None:
        call = self.make_transport()
        self._call = call
        processors = await self._build(call)
        if processors is None:
            self._ended_by = "shutdown"
            await self._close(WSCloseCode.GOING_AWAY, "server shutting down")
            return
        # The server's own turn metrics, whatever the bot: read from the call's frames.
        tap = self._metrics.turns.tap()
        chain = [call.serializer, *processors, tap, call.output]
        observers = list(self.observers(call))
        if self._archive is not None:
            self._recording = self._archive.recording()
            first, last = recorder_taps(self._recording, call.output, call.serializer)
            chain = [call.serializer, first, *processors, last, tap, call.output]
            observers.append(TimelineObserver(self._recording))
        worker = CallWorker.for_call(
            Pipeline(chain),
            observers=observers,
            name=f"call-{self._id}",
            cancel_timeout_s=PIPELINE_CANCEL_TIMEOUT_S,
        )
        worker.add_event_handler("on_pipeline_started", self._on_pipeline_started)
        worker.add_event_handler("on_pipeline_error", self._on_pipeline_error)
        self._worker = worker
        self._runner = WorkerRunner(name=f"call-runner-{self._id}", handle_sigint=False)
        await self._runner.add_workers(worker)
        self._runner_task = asyncio.create_task(self._runner.run(), name=f"call-{self._id}-run")
        self._reader_task = asyncio.create_task(self._read(), name=f"call-{self._id}-read")
        if self._mailbox is not None:
            self._mail_task = asyncio.create_task(self._collect_mail(call, worker))

        end_wait = asyncio.create_task(self._end_requested.wait())
        try:
            await asyncio.wait(
                {self._runner_task, self._reader_task, end_wait},
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            end_wait.cancel()

        if self._reader_task.done():
            await self._after_reader(self._reader_task.result())
        elif self._end_requested.is_set():
            self._ended_by = "shutdown"
            await self._cancel_reader()
            await self._end_pipeline("server_shutdown")
            await self._close(WSCloseCode.GOING_AWAY, "server shutting down")
        else:
            await self._cancel_reader()
            if not self._started.is_set():
                raise RuntimeError("the call's pipeline did not start")
            self._ended_by = "agent"
            await self._close(WSCloseCode.OK, "call ended")

    async def _build(self, call: TwilioCall) -> list[FrameProcessor] | None:
        """The factory's processors, or None when the call was ended while building."""
        build = asyncio.ensure_future(self._factory(call, self._settings))
        end_wait = asyncio.ensure_future(self._end_requested.wait())
        try:
            await asyncio.wait({build, end_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            end_wait.cancel()
            if not build.done():
                build.cancel()
                await asyncio.wait({build})
        if build.cancelled():
            return None
        return build.result()

    async def _after_reader(self, outcome: str) -> None:
        """Finish the call the way the socket's reader ended."""
        self._ended_by = outcome
        if outcome == "pipeline_failed":
            raise RuntimeError("the call's pipeline did not start")
        if outcome == "abuse":
            abuse = self._inbound.abuse if self._inbound is not None else None
            reason = abuse or (self._call.should_close if self._call is not None else None)
            logger.warning(f"call {self.label}: closing for abuse: {reason}")
            await self._close(WSCloseCode.POLICY_VIOLATION, reason or "policy violation")
            await self._end_pipeline("protocol_errors")
            return
        # "stop" (Twilio ended the stream), "hangup" (socket closed without stop), "ws_error".
        await self._end_pipeline("socket_closed" if outcome != "stop" else "stop")
        await self._close(WSCloseCode.OK, "stream stopped")

    async def _read(self) -> str:
        """Feed the socket's messages to the call; return why reading ended."""
        assert self._call is not None and self._runner_task is not None
        call = self._call
        started = asyncio.create_task(self._started.wait())
        try:
            await asyncio.wait({started, self._runner_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if not self._started.is_set():
            return "pipeline_failed"
        self._inbound = InboundReader(
            self._ws,
            call,
            max_message_bytes=self._max_bytes,
            label=lambda: self.label,
            on_protocol_error=self._on_protocol_error,
        )
        return await self._inbound.read()

    async def _collect_mail(self, call: TwilioCall, worker: PipelineWorker) -> None:
        """Once Twilio's ``start`` names the call, deliver what arrived for it before."""
        assert self._mailbox is not None
        await call.started.wait()
        for frame in self._mailbox(call.call_sid or ""):
            await worker.queue_frame(frame)

    async def _end_pipeline(self, reason: str) -> None:
        """End the call's pipeline cleanly; cancel it when it does not finish in time.

        ``TwilioCall.close`` pushes ``CallEndedFrame`` and has the worker send ``EndFrame``
        (it also tells the output the socket is gone, so no queued audio is waited for); an
        ``EndFrame`` is queued directly too (a second one is never consumed, so it is harmless).
        """
        task = self._runner_task
        if task is None or task.done():
            return
        if self._call is None or not self._started.is_set():
            await self._stop_runner()
            return
        await self._call.close(reason)  # CallEndedFrame, then the worker queues EndFrame
        if self._worker is not None:
            await self._worker.queue_frame(EndFrame(reason=reason))  # in case it did not
        done, _ = await asyncio.wait({task}, timeout=PIPELINE_END_TIMEOUT_S)
        if not done:
            logger.warning(
                f"call {self.label}: pipeline did not end within {PIPELINE_END_TIMEOUT_S} s; "
                "cancelling it"
            )
            await self._stop_runner()

    async def _stop_runner(self) -> None:
        """Cancel the pipeline (pipecat's way first, then the asyncio task)."""
        task = self._runner_task
        if task is None or task.done():
            return
        assert self._runner is not None
        await self._runner.cancel(reason="call ended")
        done, _ = await asyncio.wait({task}, timeout=PIPELINE_CANCEL_TIMEOUT_S + 1.0)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    async def _cancel_reader(self) -> None:
        task = self._reader_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def _teardown(self) -> None:
        """Make sure nothing of this call outlives it (runs on every way out)."""
        if self._mail_task is not None and not self._mail_task.done():
            self._mail_task.cancel()
        await _shielded(self._cancel_reader())
        await _shielded(self._stop_runner())
        runner_task = self._runner_task
        if runner_task is not None and runner_task.done() and not runner_task.cancelled():
            error = runner_task.exception()
            if error is not None:
                logger.opt(exception=error).error(f"call {self.label}: pipeline crashed")
        await self._close(WSCloseCode.GOING_AWAY, "call over")

    async def _close(self, code: int, message: str) -> None:
        if self._ws.closed:
            return
        try:
            await asyncio.wait_for(
                self._ws.close(code=code, message=message.encode()[:120]), WS_CLOSE_TIMEOUT_S
            )
        except (TimeoutError, ConnectionError, RuntimeError) as e:
            logger.debug(f"call {self.label}: closing the socket: {e!r}")

    # --- callbacks -------------------------------------------------------------------------

    async def _send_text(self, text: str) -> None:
        """Send one message to Twilio.

        Raises:
            ConnectionResetError: once the socket is closed (the output then stops sending).
        """
        if self._ws.closed:
            raise ConnectionResetError("the media socket is closed")
        await self._ws.send_str(text)

    def _on_protocol_error(self, kind: str) -> None:
        self._protocol_errors += 1
        self._metrics.protocol_error(kind)

    async def _on_pipeline_started(self, _worker: PipelineWorker, _frame: Frame) -> None:
        self._started.set()

    async def _on_pipeline_error(self, _worker: PipelineWorker, frame: ErrorFrame) -> None:
        self._pipeline_errors += 1
        self._metrics.pipeline_error()
        if self._pipeline_errors <= _LOGGED_PIPELINE_ERRORS:
            more = (
                " (further errors of this call are only counted)"
                if (self._pipeline_errors == _LOGGED_PIPELINE_ERRORS)
                else ""
            )
            logger.warning(f"call {self.label}: pipeline error: {frame.error}{more}")


async def _shielded(coro: Coroutine[Any, Any, None]) -> None:
    """Run cleanup to completion even when the surrounding task is being cancelled."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise
