"""The default call store: one SQLite database (stdlib ``sqlite3``, WAL journal).

WAL lets ``voiceagent calls`` read while the server writes, ``voiceagent dial`` record the call
it placed, and several workers of one machine write the same file (each write waits up to
``BUSY_TIMEOUT_S`` for the others). Each write is its own short transaction
(``synchronous=NORMAL``: a committed event survives a process crash); writes that read first
take the write lock up front (``BEGIN IMMEDIATE``), so two processes never create the same
call twice. The schema comes from :mod:`voiceagent.storage.migrations`: a new or older
database is created or migrated in place when opened, under the write lock. A store object
owns one connection and must stay on the thread that created it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from voiceagent.storage.migrations import SchemaTooNewError, pending
from voiceagent.storage.sql_store import SQLCallStore

DB_NAME = "calls.db"
BUSY_TIMEOUT_S = 5.0


class SQLiteSchemaTooNewError(SchemaTooNewError, sqlite3.DatabaseError):
    """The database was migrated by a newer voiceagent (also an ``sqlite3.DatabaseError``)."""


class SQLiteCallStore(SQLCallStore):
    """A :class:`~voiceagent.storage.store.CallStore` in ``<folder>/calls.db``."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open (and by default create) the database, migrating it to the current schema.

        Args:
            path: The database file (its folder is created when ``create``).
            create: Whether a missing database may be created (False: open an existing one).

        Raises:
            FileNotFoundError: ``create`` is False and there is no database at ``path``.
            SQLiteSchemaTooNewError: the database was written by a newer voiceagent.
            sqlite3.Error / OSError: the database cannot be opened or is not ours.
        """
        self.path = path
        if not create and not path.exists():
            raise FileNotFoundError(f"no call database at {path}")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            self._prepare()
        except SchemaTooNewError as e:
            self._db.close()
            raise SQLiteSchemaTooNewError(str(e)) from None
        except BaseException:
            self._db.close()
            raise

    def _prepare(self) -> None:
        """WAL, then the schema; retried while another process opening it holds the lock.

        SQLite answers "database is locked" at once (no busy wait) when two connections
        switch a new database to WAL together; the second one simply tries again.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                if str(self._db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._migrate()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        """Apply the missing migrations, holding the write lock (other processes wait)."""
        if not pending(self._version(), str(self.path)):
            return
        with self._transaction("BEGIN IMMEDIATE"):
            for migration in pending(self._version(), str(self.path)):  # again, under the lock
                for statement in migration.sqlite:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={migration.version}")

    def _interrupted(self, value: bool | None) -> int | None:
        return None if value is None else int(value)

    def _call_transaction(self, call_sid: str) -> Any:
        return self._transaction("BEGIN IMMEDIATE")
