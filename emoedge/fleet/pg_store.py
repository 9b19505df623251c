"""The fleet store on PostgreSQL (psycopg 3, the ``[fleet]`` extra): ``postgresql://USER@HOST[:PORT]/DB``
(``postgres://`` too; ``?host=/socket/dir`` for a local socket; also ``sslmode``, ``sslrootcert``,
``sslcert``, ``sslkey``, ``connect_timeout``, ``application_name``).

A password in the URL is refused (it would show in ``ps``, shell history and logs): it comes from
``--db-password-file`` or from libpq's own ``PGPASSFILE`` / ``~/.pgpass`` / ``PGPASSWORD``. A URL that is
not one of these is bad input (exit 2); a server that cannot be reached is exit 3."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from emoedge.core.errors import BadInputError
from emoedge.core.fileio import read_small_file
from emoedge.fleet.backends import StoreUnavailable

SCHEMES = ("postgresql", "postgres")
QUERY_KEYS = ("host", "sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name")
MAX_URL_CHARS = 2000
MAX_PASSWORD_BYTES = 4096
LOCK_KEY = 0x656D6F65         # the advisory lock schema changes take ("emoe")


def redact(spec: str) -> str:
    """``spec`` with any password in it replaced by ``***`` (for messages)."""
    spec = re.sub(r"(://[^/@]*?:)[^/@]*@", r"\1***@", spec)
    return re.sub(r"(?i)(password=)[^&#]*", r"\1***", spec)


def _bad(spec: str, why: str) -> BadInputError:
    return BadInputError(f"--db {redact(spec)[:200]!r}: {why} (expected postgresql://USER@HOST[:PORT]/DB or a "
                         "SQLite file)")


def parse_url(spec: str) -> dict[str, str]:
    """libpq connection parameters of a ``postgresql://`` URL (``BadInputError`` for anything else)."""
    if len(spec) > MAX_URL_CHARS or any(ord(c) < 32 for c in spec):
        raise _bad(spec, f"over {MAX_URL_CHARS} characters or holding control characters")
    try:
        u = urlsplit(spec)
        port = u.port
        password = u.password
    except ValueError as exc:
        raise _bad(spec, str(exc)) from None
    if u.scheme not in SCHEMES:
        raise _bad(spec, f"unknown scheme {u.scheme!r}")
    if password is not None:
        raise _bad(spec, "a password in the URL is refused: give it with --db-password-file or PGPASSFILE")
    if u.fragment:
        raise _bad(spec, "a URL fragment (#...) is not allowed")
    db = unquote(u.path[1:] if u.path.startswith("/") else u.path)
    if not db or "/" in db:
        raise _bad(spec, "the database name is missing or holds '/'")
    out = {"dbname": db}
    netloc_host = u.netloc.rpartition("@")[2]
    host = netloc_host.rsplit(":", 1)[0] if port is not None or netloc_host.endswith(":") else netloc_host
    if host:
        out["host"] = unquote(host.strip("[]"))
    if u.username:
        out["user"] = unquote(u.username)
    if port is not None:
        out["port"] = str(port)
    try:
        pairs = parse_qsl(u.query, keep_blank_values=True, strict_parsing=bool(u.query))
    except ValueError as exc:
        raise _bad(spec, f"bad query string: {exc}") from None
    for key, value in pairs:
        if key == "password":
            raise _bad(spec, "a password in the URL is refused: give it with --db-password-file or PGPASSFILE")
        if key not in QUERY_KEYS or key in out and key != "host" or not value:
            raise _bad(spec, f"query parameter {key!r} is not one of {', '.join(QUERY_KEYS)} (once each, non-empty)")
        out[key] = value
    if "host" not in out:
        raise _bad(spec, "no host (postgresql://USER@HOST/DB, or ?host=/socket/dir)")
    return out


def read_password(path: str | Path) -> str:
    p = Path(path)    # a regular file, read bounded: a FIFO would hang, /dev/zero never end
    data = read_small_file(p, "the --db-password-file", MAX_PASSWORD_BYTES, BadInputError)
    try:
        text = data.decode().splitlines()[0] if data.strip() else ""
    except UnicodeDecodeError:
        raise BadInputError(f"--db-password-file {p}: not UTF-8 text") from None
    if not text:
        raise BadInputError(f"--db-password-file {p}: empty")
    return text


def load_psycopg():
    try:
        import psycopg
    except ImportError as exc:
        raise BadInputError("a postgresql:// fleet store needs psycopg 3: pip install -e '.[fleet]'") from exc
    return psycopg


class PgBackend:
    """PostgreSQL through psycopg 3; each thread opens its own connection (autocommit, explicit transactions)."""

    dialect = "postgresql"
    greatest, least = "GREATEST", "LEAST"

    def __init__(self, url: str, password_file: str | Path | None = None):
        self.psycopg = load_psycopg()
        self.params = parse_url(url)
        self.params.setdefault("connect_timeout", "10")
        self.params.setdefault("application_name", "emoedge-fleet")
        self.password = read_password(password_file) if password_file else None
        self.describe = self.path = url
        self.errors = (self.psycopg.Error,)

    def connect(self):
        kw = dict(self.params)
        if self.password is not None:
            kw["password"] = self.password
        try:
            return self.psycopg.connect(autocommit=True, **kw)
        except self.psycopg.Error as exc:
            raise StoreUnavailable(f"fleet store {self.describe}: cannot connect: {str(exc).strip()[:400]}") from exc

    @staticmethod
    def q(sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def transaction(self, db):
        with db.transaction():
            yield

    def lock(self, db) -> None:
        db.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))

    def retryable(self, exc: BaseException) -> bool:
        e = self.psycopg.errors
        return isinstance(exc, (e.DeadlockDetected, e.SerializationFailure, e.UniqueViolation))

    @staticmethod
    def table_exists(db, name: str) -> bool:
        return db.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]

    @staticmethod
    def columns(db, table: str) -> set[str]:
        return {r[0] for r in db.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                                         "AND table_schema = current_schema()", (table,))}

    def insert_new(self, db, table: str, cols: tuple[str, ...], types: str, rows: list[tuple]) -> set:
        """One ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING`` key (the first column)
        for all the rows; the keys stored."""
        if not rows:
            return set()
        sql = f"{_unnest(table, cols, types)} ON CONFLICT DO NOTHING RETURNING {cols[0]}"
        return {r[0] for r in db.execute(sql, _arrays(rows, len(cols))).fetchall()}

    def upsert(self, db, table: str, cols: tuple[str, ...], types: str, rows: list[tuple], tail: str) -> None:
        """All the rows in one ``INSERT ... SELECT FROM unnest(arrays) ... tail`` statement, in their order (the
        callers sort them by key: the locks are taken in that order, so writers do not deadlock)."""
        if rows:
            db.execute(f"{_unnest(table, cols, types)} {tail}", _arrays(rows, len(cols)))

    @staticmethod
    def stream(db, sql: str, params: tuple = (), chunk: int = 2000) -> Iterator[tuple]:
        """The rows of a query through a server-side cursor, ``chunk`` at a time (memory bounded)."""
        with db.transaction(), db.cursor(name="emoedge_stream") as cur:
            cur.execute(sql.replace("?", "%s"), params)
            while rows := cur.fetchmany(chunk):
                yield from rows


PG_TYPES = {"t": "text", "i": "bigint", "r": "double precision"}


def _unnest(table: str, cols: tuple[str, ...], types: str) -> str:
    arrays = ", ".join(f"%s::{PG_TYPES[t]}[]" for t in types)
    return (f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join('u.' + c for c in cols)} FROM "
            f"unnest({arrays}) WITH ORDINALITY AS u({', '.join(cols)}, n) ORDER BY n")


def _arrays(rows: list[tuple], width: int) -> list[list]:
    return [list(col) for col in zip(*rows)] if rows else [[] for _ in range(width)]
