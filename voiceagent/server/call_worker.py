"""The call's pipecat ``PipelineWorker``, whose observers are told only of the frames they watch.

pipecat's ``WorkerObserver`` hands every frame processed and every frame pushed, at every stage,
to each observer through a queue and a task of the observer's own: for the caller's audio that
was about ten queue hand-overs per caller audio frame per call, although no observer of ours reads a
single audio frame. pipecat 1.14 has no way to say which frames an observer wants, so:

- An observer that sets ``watched`` (a tuple of frame types, :class:`WatchingObserver`) is told
  only of pushes of those frames; one that does not set it is told of everything, as in pipecat.
- ``FrameProcessed`` events reach only observers that override ``on_process_frame``.
- A frame no observer watches costs one ``isinstance`` check and is not remembered for
  pipecat's "first push" bookkeeping (a weak dictionary entry per frame).

:class:`CallWorker` puts :class:`WatchingWorkerObserver` where ``PipelineWorker`` puts its own
``WorkerObserver`` (the attribute ``_observer``; pipecat is pinned to 1.14 and
``tests/server/test_call_worker.py`` fails if that changes).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pipecat.frames.frames import Frame
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.pipeline.worker_observer import WorkerObserver

from voiceagent.settings import PIPELINE_SAMPLE_RATE


class WatchingObserver(BaseObserver):
    """A pipecat observer that names the frame types it wants (``watched``)."""

    watched: ClassVar[tuple[type[Frame], ...]] = ()


def _watched(observer: BaseObserver) -> tuple[type[Frame], ...] | None:
    """The frame types ``observer`` wants pushes of, or None for every frame."""
    watched = getattr(observer, "watched", None)
    return tuple(watched) if watched else None


def _overrides_process(observer: BaseObserver) -> bool:
    return type(observer).on_process_frame is not BaseObserver.on_process_frame


class WatchingWorkerObserver(WorkerObserver):
    """pipecat's ``WorkerObserver``, queueing to each observer only what it watches."""

    def __init__(self, *, observers: list[BaseObserver] | None = None, **kwargs: Any) -> None:
        """Create the proxy for ``observers`` (see the module's docstring)."""
        super().__init__(observers=observers, **kwargs)
        self._refresh()

    def add_observer(self, observer: BaseObserver) -> None:
        """Add an observer (as pipecat's) and widen what is watched."""
        super().add_observer(observer)
        self._refresh()

    async def remove_observer(self, observer: BaseObserver) -> None:
        """Remove an observer (as pipecat's) and narrow what is watched."""
        await super().remove_observer(observer)
        self._refresh()

    def _refresh(self) -> None:
        self._types = {id(o): _watched(o) for o in self._observers}
        self._watch_all = any(types is None for types in self._types.values())
        watched = [t for types in self._types.values() for t in types or ()]
        self._watched_types: tuple[type[Frame], ...] = tuple(dict.fromkeys(watched))
        self._process_watchers = {id(o) for o in self._observers if _overrides_process(o)}

    async def on_process_frame(self, data: FrameProcessed) -> None:
        """Queue the event only when an observer reads processed frames."""
        if not self._proxies or not self._process_watchers:
            return
        for observer, proxy in self._proxies.items():
            if id(observer) in self._process_watchers:
                await proxy.queue.put(data)

    async def on_push_frame(self, data: FramePushed) -> None:
        """Queue a push to the observers that watch its frame (first pushes as pipecat's)."""
        if not self._proxies:
            return
        frame = data.frame
        if not self._watch_all and not isinstance(frame, self._watched_types):
            return
        data.first_push = frame.id not in self._frames_pushed
        if data.first_push:
            self._frames_pushed[frame.id] = frame
        for observer, proxy in self._proxies.items():
            if not (data.first_push or observer.observe_every_push):
                continue
            types = self._types.get(id(observer))
            if types is None or isinstance(frame, types):
                await proxy.queue.put(data)


class CallWorker(PipelineWorker):
    """pipecat's ``PipelineWorker`` with :class:`WatchingWorkerObserver` as its observer."""

    @classmethod
    def for_call(
        cls,
        pipeline: Pipeline,
        *,
        observers: list[BaseObserver],
        name: str,
        cancel_timeout_s: float,
    ) -> CallWorker:
        """The worker of one phone call: the pipeline rate, no idle end, no RTVI, no tracking."""
        return cls(
            pipeline,
            params=PipelineParams(
                audio_in_sample_rate=PIPELINE_SAMPLE_RATE,
                audio_out_sample_rate=PIPELINE_SAMPLE_RATE,
            ),
            cancel_on_idle_timeout=False,
            idle_timeout_secs=None,
            enable_rtvi=False,
            # No turn-tracking observer: nothing reads it, and it takes every frame of the call
            # through a queue and a task of its own.
            enable_turn_tracking=False,
            cancel_timeout_secs=cancel_timeout_s,
            observers=observers,
            name=name,
        )

    def __init__(self, *args: Any, observers: list[BaseObserver] | None = None, **kwargs: Any):
        """As ``PipelineWorker``; ``observers`` go to the watching proxy."""
        super().__init__(*args, observers=observers, **kwargs)
        if not isinstance(getattr(self, "_observer", None), WorkerObserver):
            raise RuntimeError("pipecat's PipelineWorker changed: it has no _observer to replace")
        # pipecat may have added observers of its own (turn tracking, RTVI): keep them all.
        self._observer = WatchingWorkerObserver(observers=list(self._observer._observers))
