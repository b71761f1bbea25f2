"""The call store in PostgreSQL (psycopg 3), for several servers sharing one database.

``VOICEAGENT_STORAGE__URL=postgresql://user:password@host:5432/voiceagent`` selects it (any
libpq connection string works; ``?options=-csearch_path%3Dvoiceagent`` keeps the tables in a
schema of their own). Each store object (one per server process, on its storage thread) owns
one connection in autocommit mode; each write is a short transaction. A lost connection fails
the write under way (the recording counts it) and the next write connects again.

Opening a store applies the missing migrations (:mod:`voiceagent.storage.migrations`) inside
one transaction holding a PostgreSQL advisory lock, so servers starting together migrate once.
A write that reads first (a stream attaching to the call the dialer placed, a status step)
holds an advisory lock on the call sid, as SQLite's ``BEGIN IMMEDIATE`` does.
"""

from __future__ import annotations

from typing import Any

from voiceagent.storage.migrations import pending
from voiceagent.storage.sql_store import SQLCallStore, to_json
from voiceagent.storage.store import StoreError

CONNECT_TIMEOUT_S = 5
MIGRATION_LOCK = 0x766F6963  # the advisory lock key held while migrating ("voic")
_VERSIONS = "voiceagent_schema"


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as e:  # an optional dependency: only this backend needs it
        raise StoreError(
            "a postgresql:// storage URL needs psycopg: pip install 'voiceagent[postgres]'"
        ) from e
    return psycopg


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresCallStore(SQLCallStore):
    """A :class:`~voiceagent.storage.store.CallStore` in a PostgreSQL database."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        """Connect (and by default migrate) the database at ``url``.

        Args:
            url: A ``postgresql://`` connection URL.
            create: Whether missing tables may be created (False: open a database that has
                them; an older schema is still migrated).

        Raises:
            StoreError: the server cannot be reached, or its schema is newer than ours.
            FileNotFoundError: ``create`` is False and no voiceagent tables exist yet.
        """
        self.url = url
        self._psycopg = _psycopg()
        self._db = self._connect()
        try:
            if not create and self._version() == 0:
                raise FileNotFoundError(f"no voiceagent tables in {redact(url)}")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        except self._psycopg.Error as e:
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StoreError(f"cannot connect to {redact(self.url)}: {message}") from e

    def _version(self) -> int:
        exists = self._execute("SELECT to_regclass(?)", (_VERSIONS,)).fetchone()[0]
        if exists is None:
            return 0
        row = self._execute(f"SELECT coalesce(max(version), 0) FROM {_VERSIONS}").fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        """Apply the missing migrations under the advisory lock, in one transaction."""
        with self._transaction():
            self._execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            self._execute(
                f"CREATE TABLE IF NOT EXISTS {_VERSIONS} (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for migration in pending(self._version(), redact(self.url)):
                for statement in migration.postgres:
                    self._execute(statement)
                self._execute(
                    f"INSERT INTO {_VERSIONS} (version, name) VALUES (?, ?)",
                    (migration.version, migration.name),
                )

    # -- backend hooks --------------------------------------------------------------------

    def _sql(self, query: str) -> str:
        return query.replace("?", "%s")

    def _json(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value, dumps=to_json)

    def _call_transaction(self, call_sid: str) -> Any:
        return _Locked(self, call_sid)

    def _execute(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        if self._db.closed:
            self._db = self._connect()
        try:
            return self._db.execute(self._sql(query), params)
        except self._psycopg.OperationalError:
            if self._db.broken:
                self._db.close()  # reconnect on the next write
            raise


class _Locked:
    """A transaction holding an advisory lock on one call sid (released at its end)."""

    def __init__(self, store: PostgresCallStore, call_sid: str) -> None:
        self._transaction = store._transaction()
        self._store = store
        self._call_sid = call_sid

    def __enter__(self) -> None:
        self._transaction.__enter__()
        self._store._execute("SELECT pg_advisory_xact_lock(hashtext(?))", (self._call_sid,))

    def __exit__(self, *exc: Any) -> Any:
        return self._transaction.__exit__(*exc)
