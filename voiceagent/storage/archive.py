"""The process-wide call archive: one store, one folder of recordings, one storage thread.

Every disk write of every call (database rows, WAV appends) runs in order on a single
storage thread, so nothing on the event loop ever waits for the disk and SQLite has one
writer. The store is opened lazily on that thread by the first call's first write; if it
cannot be opened, each call's recording reports that once and the calls go on.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from loguru import logger

from voiceagent.clock import DEFAULT_CLOCK, Clock
from voiceagent.settings import StorageSettings
from voiceagent.storage.sqlite import DB_NAME, SQLiteCallStore
from voiceagent.storage.store import CallStatusUpdate, CallStore

if TYPE_CHECKING:
    from voiceagent.storage.recording import CallRecording

T = TypeVar("T")
CLOSE_TIMEOUT_S = 10.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def open_store(settings: StorageSettings, *, create: bool = True) -> CallStore:
    """The store configured by ``settings``: PostgreSQL at its ``url``, else SQLite in its ``dir``.

    Opening migrates the schema (unless ``create`` is False). Blocks.

    Raises:
        FileNotFoundError: ``create`` is False and nothing was stored yet.
        StoreError: the database cannot be reached or is from a newer voiceagent.
    """
    if settings.url:
        from voiceagent.storage.postgres import PostgresCallStore

        return PostgresCallStore(settings.url, create=create)
    return SQLiteCallStore(settings.dir / DB_NAME, create=create)


class CallArchive:
    """Where this process keeps its calls; hands out one :class:`CallRecording` per call.

    Attributes:
        write_errors: Failed writes over all calls (each call logs its first one).
    """

    def __init__(
        self,
        settings: StorageSettings,
        *,
        store_factory: Callable[[], CallStore] | None = None,
    ) -> None:
        """Create the archive (nothing is opened until the first write).

        Args:
            settings: Folder, audio on/off, flush interval.
            store_factory: Opens the store (on the storage thread); SQLite in ``settings.dir``
                by default.
        """
        self.settings = settings
        self.recordings_dir = settings.dir / "recordings"
        self._store_factory = store_factory or (lambda: open_store(settings))
        self._store: CallStore | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voiceagent-storage")
        self._closed = False
        self._live: weakref.WeakSet[CallRecording] = weakref.WeakSet()
        self.write_errors = 0

    # -- the storage thread ---------------------------------------------------------------

    def submit(self, job: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``job(*args)`` on the storage thread, after every job submitted before it."""
        return self._executor.submit(job, *args)

    async def run(self, job: Callable[..., T], *args: Any) -> T:
        """Run ``job(*args)`` on the storage thread and wait for its result."""
        return await asyncio.wrap_future(self.submit(job, *args))

    def store(self) -> CallStore:
        """The store, opened on first use. Storage thread only.

        Raises:
            Exception: whatever opening the store raised (retried on the next use).
        """
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def audio_path(self, call_sid: str, started_at: float) -> Path:
        """Where a call's WAV goes: ``recordings/YYYY-MM-DD/<time>-<call sid>.wav``."""
        local = time.localtime(started_at)
        name = _UNSAFE.sub("_", call_sid)[:64] or "call"
        folder = self.recordings_dir / time.strftime("%Y-%m-%d", local)
        path = folder / f"{time.strftime('%H%M%S', local)}-{name}.wav"
        n = 2
        while path.exists():
            path = folder / f"{time.strftime('%H%M%S', local)}-{name}-{n}.wav"
            n += 1
        return path

    # -- calls ----------------------------------------------------------------------------

    def recording(self, *, clock: Clock = DEFAULT_CLOCK) -> CallRecording:
        """A new recording for one call (it starts at the call's ``CallStartedFrame``)."""
        from voiceagent.storage.recording import CallRecording

        recording = CallRecording(self, clock=clock)
        self._live.add(recording)
        return recording

    def record_status(self, update: CallStatusUpdate) -> None:
        """Add a step to a call's status timeline on the storage thread (never blocks).

        A failure is logged with the call sid and counted; nothing is raised.
        """
        try:
            self.submit(self._record_status, update)
        except RuntimeError as e:  # the storage thread was shut down
            self._status_failed(update, e)

    def _record_status(self, update: CallStatusUpdate) -> None:
        try:
            self.store().record_status(update)
        except Exception as e:
            self._status_failed(update, e)

    def _status_failed(self, update: CallStatusUpdate, error: Exception) -> None:
        self.count_error()
        logger.warning(
            f"call {update.call_sid}: storing its {update.status} status failed: {error!r}"
        )

    def count_error(self) -> None:
        """One more failed write (storage thread)."""
        self.write_errors += 1

    async def close(self) -> None:
        """Finish every pending write, close the store, stop the thread."""
        if self._closed:
            return
        self._closed = True
        for recording in list(self._live):  # their events so far go before the store closes
            recording.flush_events()
        try:
            await asyncio.wait_for(self.run(self._close_store), CLOSE_TIMEOUT_S)
        except TimeoutError:
            logger.error(f"call archive: pending writes did not finish in {CLOSE_TIMEOUT_S} s")
        finally:
            self._executor.shutdown(wait=False)

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception as e:
                logger.warning(f"call archive: closing the store failed: {e!r}")
