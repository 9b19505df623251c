"""A throwaway PostgreSQL server for the tests (Debian package ``postgresql``; `.ci/run` installs it):
``initdb`` + ``pg_ctl start`` in a temporary folder, listening on a unix socket in that folder and on
127.0.0.1 at a free port, trust authentication for the one user ``emoedge``, stopped at the end of the
session. PostgreSQL refuses to run as root: as root the folder belongs to the ``postgres`` user and
the server runs as that user (``runuser``). Tests skip, naming postgresql or psycopg, where either
is absent. ``pg_server`` is the session fixture; ``server.new_db()`` a fresh database's URL."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from mqtt_broker import free_port


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def need_postgresql() -> Path:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -c constraints.txt -e '.[fleet]')")
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("no postgresql server on this machine (apt-get install postgresql; .ci/run installs it)")
    return bindir


class PgServer:
    """``initdb`` + ``pg_ctl start`` in a temporary folder (as ``postgres`` when run as root)."""

    USER = "emoedge"

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="emoedge-pg-"))       # short: a socket path has 107 bytes
        self.data, self.port = self.folder / "data", free_port()
        self.as_user: list[str] = []
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._names = itertools.count(1)

    def _run(self, *cmd: str) -> None:
        out = subprocess.run(self.as_user + list(cmd), capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"postgresql: {' '.join(cmd[:2])} failed: {(out.stderr or out.stdout)[-800:]}")

    def start(self) -> PgServer:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.USER, "--auth=trust", "-E", "UTF8",
                  "--no-locale")
        opts = (f"-k {self.folder} -c listen_addresses=127.0.0.1 -p {self.port} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.folder / "log"),
                  "-w", "-t", "60", "start")
        return self

    def url(self, db: str = "postgres", socket: bool = False) -> str:
        if socket:
            return f"postgresql://{self.USER}@localhost:{self.port}/{db}?host={self.folder}"
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{db}"

    def new_db(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t{next(self._names)}"
        with psycopg.connect(host=str(self.folder), port=self.port, user=self.USER, dbname="postgres",
                             autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                                           "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    server = PgServer(need_postgresql())
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        pytest.skip(f"a postgresql server could not be started here: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_spec(request, tmp_path) -> str:
    """A fresh fleet store's ``--db``: a SQLite file, then a PostgreSQL database (the same tests on both)."""
    if request.param == "sqlite":
        return str(tmp_path / "fleet.sqlite")
    return request.getfixturevalue("pg_server").new_db()
