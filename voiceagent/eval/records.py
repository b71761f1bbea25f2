"""The server's record of an eval call, read from the call store the server writes.

Every call the server records (any bot: the recorder and the timeline observer belong to the
server) is read back here by its call sid once complete, as a :class:`CallTimeline`; the eval
adds the caller's side to it and writes that back, so ``voiceagent calls show SID`` shows both.
The store is read on a worker thread (SQLite blocks); the server's storage thread keeps writing
meanwhile (WAL).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable

from loguru import logger

from voiceagent.settings import StorageSettings
from voiceagent.storage.archive import open_store
from voiceagent.storage.store import CallDetail, CallEvent
from voiceagent.timeline.model import CallTimeline

POLL_S = 0.1


class CallRecords:
    """Reads calls from (and adds the caller's side to) the store of ``settings``."""

    def __init__(self, settings: StorageSettings) -> None:
        """Read the store configured by ``settings`` (nothing is opened yet)."""
        self.settings = settings
        self._warned = False

    def _find(self, call_sid: str) -> CallDetail | None:
        try:
            store = open_store(self.settings, create=False)
        except FileNotFoundError:
            return None
        try:
            return store.find_call(call_sid)
        finally:
            store.close()

    async def timeline(self, call_sid: str, *, wait_s: float = 10.0) -> CallTimeline | None:
        """The call's timeline once the server completed its record (None: not found in time).

        A record still open after ``wait_s`` is returned as it is (the server may still be
        writing its last events).
        """
        deadline = time.monotonic() + wait_s
        detail = None
        while True:
            try:
                detail = await asyncio.to_thread(self._find, call_sid)
            except (sqlite3.Error, OSError) as e:
                if not self._warned:
                    self._warned = True
                    logger.warning(f"eval: cannot read the call store {self.settings.dir}: {e}")
                return None
            if detail is not None and detail.call.ended_at is not None:
                break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        return CallTimeline.from_detail(detail) if detail is not None else None

    async def add(self, timeline: CallTimeline, events: Iterable[CallEvent]) -> None:
        """Store stream-clock ``events`` with the call (e.g. the caller's side of an eval)."""
        stored = timeline.stored_events(events)
        record_id = timeline.record_id
        if record_id is None or not stored:
            return

        def write() -> None:
            store = open_store(self.settings, create=False)
            try:
                for event in stored:
                    store.add_event(record_id, event)
            finally:
                store.close()

        try:
            await asyncio.to_thread(write)
        except (sqlite3.Error, OSError) as e:
            logger.warning(f"eval: cannot add the caller's side to call {timeline.call_sid}: {e}")
