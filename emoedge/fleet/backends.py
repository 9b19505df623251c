"""What the fleet store needs of a database, and its errors: :class:`SqliteBackend` (one file, the zero-setup
default) here, the PostgreSQL one in :mod:`emoedge.fleet.pg_store`. SQL is written once with ``?``
placeholders; a backend turns it into its own (``q``). Both support ``INSERT ... ON CONFLICT``.

A failing database raises :class:`StoreError` (also a ``sqlite3.Error``, so a caller that catches
``sqlite3.Error`` catches the PostgreSQL backend's failures too); a server that cannot be reached at
open is :class:`StoreUnavailable` (exit 3)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from emoedge.core.errors import EXIT_SOURCE, EXIT_WRITE, BadInputError, EmoedgeError
from emoedge.core.fileio import wal_connect


class StoreError(EmoedgeError, sqlite3.Error):
    """The fleet store's database failed (disk full, server gone, lock timeout): nothing of the batch
    was written. The message names the store."""
    exit_code = EXIT_WRITE


class StoreUnavailable(StoreError):
    """The database server cannot be reached or refuses the store (exit 3, like a lost broker)."""
    exit_code = EXIT_SOURCE


class SqliteBackend:
    """One SQLite file in WAL mode (readers never block the writer; writers take turns)."""

    dialect = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    greatest, least = "max", "min"          # SQLite's scalar max/min of two values

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.describe = str(self.path)

    def connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return wal_connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise BadInputError(f"{self.path}: cannot use as the fleet store: {exc}") from exc

    @staticmethod
    def q(sql: str) -> str:
        return sql

    @contextmanager
    def transaction(self, db: sqlite3.Connection):
        """One write transaction, taken at once (BEGIN IMMEDIATE: two writers wait their turn instead of
        failing when one upgrades a read), committed at the end or rolled back on an error."""
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.rollback()
            raise
        db.commit()

    @staticmethod
    def lock(db) -> None:
        """Writers' mutual exclusion for schema changes: BEGIN IMMEDIATE already is one."""

    @staticmethod
    def retryable(exc: BaseException) -> bool:
        return False

    @staticmethod
    def table_exists(db, name: str) -> bool:
        row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        return row is not None

    @staticmethod
    def columns(db, table: str) -> set[str]:
        return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}

    @staticmethod
    def insert_new(db, table: str, cols: tuple[str, ...], types: str, rows: list[tuple]) -> set:
        """``INSERT ... ON CONFLICT DO NOTHING`` of each row (its first value is the key); the keys stored."""
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) ON CONFLICT DO NOTHING"
        return {r[0] for r in rows if db.execute(sql, r).rowcount == 1}

    @staticmethod
    def upsert(db, table: str, cols: tuple[str, ...], types: str, rows: list[tuple], tail: str) -> None:
        """``INSERT INTO table (cols) VALUES ... tail`` (an ON CONFLICT clause) of each row, in the given order."""
        executemany(db, f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) {tail}", rows)

    @staticmethod
    def stream(db, sql: str, params: tuple = (), chunk: int = 2000) -> Iterator[tuple]:
        """The rows of a query, fetched ``chunk`` at a time (memory bounded whatever the row count)."""
        cur = db.execute(sql, params)
        try:
            while rows := cur.fetchmany(chunk):
                yield from rows
        finally:
            cur.close()


def executemany(db, sql: str, rows: list) -> None:
    """``executemany`` on a cursor (psycopg's connections have none)."""
    if rows:
        cur = db.cursor()
        try:
            cur.executemany(sql, rows)
        finally:
            cur.close()


def is_url(spec: str | Path) -> bool:
    return isinstance(spec, str) and "://" in spec[:20]
