"""The fleet store as ``emoedge bench fleet --simulate`` sees it: SQLite (a file path) or PostgreSQL (a
``postgresql://`` URL), read directly (not through the store's code, so the bench counts what is really
in the table): every ``interval_id`` with its ``received_unix_ns``, the row count, the counters, the
size on disk. And a local PostgreSQL for ``--db auto``: ``initdb`` + ``pg_ctl`` in a temporary folder,
on a unix socket there and 127.0.0.1 at a free port (as the ``postgres`` user when run as root), with
the server's default durability settings (fsync on) so the numbers are a real server's."""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from emoedge.benchmarks.fleet_sim import _free_port


def is_postgres(db: str) -> bool:
    return str(db).startswith(("postgresql://", "postgres://"))


def _pg(db: str):
    import psycopg

    return psycopg.connect(db, autocommit=True)


def _query(db: str, sql: str) -> list[tuple]:
    if is_postgres(db):
        with _pg(db) as conn:
            return list(conn.execute(sql).fetchall())
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _devices(prefix: str) -> str:
    """SQL selecting the devices named ``prefix...`` (an index range, so a count stays cheap beside 17 million
    prefilled rows, and LIKE, so the range can only narrow it); ``prefix`` ends with a dash."""
    if not prefix.endswith("-") or not prefix.replace("-", "").isalnum():
        raise ValueError(f"device prefix {prefix!r}: letters and digits, then a dash")
    return f"device >= '{prefix}' AND device < '{prefix[:-1]}.' AND device LIKE '{prefix}%'"


def stored(db: str, device_prefix: str) -> list[tuple[str, int]]:
    """The stored intervals of the devices whose names start with ``device_prefix``: (interval_id,
    received_unix_ns), one per row."""
    sql = f"SELECT interval_id, received_unix_ns FROM intervals WHERE {_devices(device_prefix)}"
    return [(str(i), int(t)) for i, t in _query(db, sql)]


def row_count(db: str, device_prefix: str) -> int:
    """Rows of the devices ``device_prefix...`` (0 while the store does not exist yet)."""
    try:
        return int(_query(db, f"SELECT COUNT(*) FROM intervals WHERE {_devices(device_prefix)}")[0][0])
    except Exception:   # noqa: BLE001 (no file or table yet: nothing stored)
        return 0


def counters(db: str) -> dict[str, int]:
    """The store's own counters (stored, duplicate, conflict, rejected), where it keeps them."""
    try:
        return {str(k): int(v) for k, v in _query(db, "SELECT name, value FROM counters")}
    except Exception:   # noqa: BLE001 (a store without a counters table)
        return {}


def size_bytes(db: str) -> int | None:
    """The store's size: the SQLite file with its WAL, or PostgreSQL's database size."""
    if is_postgres(db):
        return int(_query(db, "SELECT pg_database_size(current_database())")[0][0])
    files = [Path(db), Path(f"{db}-wal"), Path(f"{db}-shm")]
    return sum(p.stat().st_size for p in files if p.is_file()) if Path(db).is_file() else None


def pg_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are (Debian's newest /usr/lib/postgresql/N/bin, else the PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class LocalPostgres:
    """A throwaway PostgreSQL server for one bench run; ``url`` is its database ``fleet``."""

    USER = "emoedge"

    def __init__(self, bindir: Path, settings: tuple[str, ...] = ()):
        self.bindir = bindir
        self.settings = settings                                          # extra server settings (name=value)
        self.folder = Path(tempfile.mkdtemp(prefix="emoedge-pg-"))       # short: a socket path has 107 bytes
        self.data, self.port = self.folder / "data", _free_port()
        self.as_user: list[str] = []
        if hasattr(os, "geteuid") and os.geteuid() == 0:                  # PostgreSQL refuses to run as root
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str) -> None:
        out = subprocess.run(self.as_user + list(cmd), capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"postgresql: {Path(cmd[0]).name} failed: {(out.stderr or out.stdout)[-800:]}")

    def start(self, database: str | None = "fleet") -> LocalPostgres:
        """initdb, start (socket in the folder, 127.0.0.1 on the port), and create ``database`` if given."""
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.USER, "--auth=trust", "-E", "UTF8",
                  "--no-locale")
        opts = " ".join([f"-k {self.folder} -c listen_addresses=127.0.0.1 -p {self.port} -c max_connections=100",
                         *(f"-c {x}" for x in self.settings)])
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.folder / "log"),
                  "-w", "-t", "60", "start")
        if database:
            with _pg(self.url_of("postgres")) as conn:
                conn.execute(f"CREATE DATABASE {database}")
        return self

    def url_of(self, db: str, socket: bool = False) -> str:
        """A database's URL: over 127.0.0.1, or (``socket``) the unix socket in the server's folder."""
        if socket:
            return f"postgresql://{self.USER}@localhost:{self.port}/{db}?host={self.folder}"
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{db}"

    @property
    def url(self) -> str:
        return self.url_of("fleet")

    def pids(self) -> list[int]:
        """The server's processes (postmaster and backends), for their CPU time."""
        pidfile = self.data / "postmaster.pid"
        try:
            main = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        kids = subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True).stdout.split()
        return [main] + [int(k) for k in kids]

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                                           "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
