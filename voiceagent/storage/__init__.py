"""Persisted calls: a row and a transcript per call in a store, plus one WAV per call.

The store is SQLite by default, or PostgreSQL (``storage.url``) for servers sharing one.

``CallArchive`` (one per process) owns the store and the storage thread; each call gets a
``CallRecording`` fed by the recorder taps (:mod:`voiceagent.processors.recorder`).
"""

from voiceagent.storage.archive import CallArchive, open_store
from voiceagent.storage.recording import CallRecording
from voiceagent.storage.store import (
    CallDetail,
    CallEnd,
    CallEvent,
    CallInfo,
    CallStore,
    CallSummary,
    StoreError,
)

__all__ = [
    "StoreError",
    "CallArchive",
    "CallDetail",
    "CallEnd",
    "CallEvent",
    "CallInfo",
    "CallRecording",
    "CallStore",
    "CallSummary",
    "open_store",
]
