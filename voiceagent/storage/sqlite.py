"""The default call store: one SQLite database (stdlib ``sqlite3``, WAL journal).

WAL lets ``voiceagent calls`` read while the server writes, and several workers of one machine
write the same file (each write waits up to ``BUSY_TIMEOUT_S`` for the others). Each write is
its own short transaction (``synchronous=NORMAL``: a committed event survives a process crash).
The schema comes from :mod:`voiceagent.storage.migrations`, applied under SQLite's write lock.
A store object owns one connection and must stay on the thread that created it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from voiceagent.storage.migrations import pending
from voiceagent.storage.sql_store import SQLCallStore

DB_NAME = "calls.db"
BUSY_TIMEOUT_S = 5.0


class SQLiteCallStore(SQLCallStore):
    """A :class:`~voiceagent.storage.store.CallStore` in ``<folder>/calls.db``."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open (and by default create and migrate) the database.

        Args:
            path: The database file (its folder is created when ``create``).
            create: Whether a missing database may be created and migrated (False: read an
                existing one as it is).

        Raises:
            FileNotFoundError: ``create`` is False and there is no database at ``path``.
            SchemaTooNewError: the database was written by a newer voiceagent.
            sqlite3.Error / OSError: the database cannot be opened or is not ours.
        """
        self.path = path
        if not create and not path.exists():
            raise FileNotFoundError(f"no call database at {path}")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            self._prepare(create)
        except BaseException:
            self._db.close()
            raise

    def _prepare(self, create: bool) -> None:
        """WAL, then the schema; retried while another worker opening it holds the lock.

        SQLite answers "database is locked" at once (no busy wait) when two connections
        switch a new database to WAL together; the second one simply tries again.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                if create:
                    self._migrate()
                else:
                    pending(self._version(), str(self.path))  # refuses a newer schema
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        """Apply the missing migrations, holding the write lock (other workers wait)."""
        if not pending(self._version(), str(self.path)):
            return
        with self._transaction(immediate=True):
            for migration in pending(self._version(), str(self.path)):
                for statement in migration.sqlite:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={migration.version}")

    def _interrupted(self, value: bool | None) -> int | None:
        return None if value is None else int(value)

    def _transaction(self, *, immediate: bool = False) -> _Transaction:
        """``BEGIN`` (``IMMEDIATE``: take the write lock now) … ``COMMIT``."""
        return _Transaction(self._db, "BEGIN IMMEDIATE" if immediate else "BEGIN")


class _Transaction:
    """``BEGIN`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection, begin: str) -> None:
        self._db = db
        self._begin = begin

    def __enter__(self) -> None:
        self._db.execute(self._begin)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
