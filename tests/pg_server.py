"""A throwaway PostgreSQL server for the tests (Debian package ``postgresql``; `.ci/run` installs it):
``initdb`` + ``pg_ctl start`` in a temporary folder, listening on a unix socket in that folder and on
127.0.0.1 at a free port, trust authentication for the one user ``emoedge``, stopped at the end of the
session. PostgreSQL refuses to run as root: as root the folder belongs to the ``postgres`` user and
the server runs as that user (``runuser``). Tests skip, naming postgresql or psycopg, where either
is absent. ``pg_server`` is the session fixture; ``server.new_db()`` a fresh database's URL."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from emoedge.benchmarks.fleet_load_store import LocalPostgres, pg_bindir


def pg_bin() -> Path | None:
    return pg_bindir()


def need_postgresql() -> Path:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -c constraints.txt -e '.[fleet]')")
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("no postgresql server on this machine (apt-get install postgresql; .ci/run installs it)")
    return bindir


class PgServer(LocalPostgres):
    """The bench's throwaway server (emoedge.benchmarks.fleet_load_store.LocalPostgres) made for tests:
    durability off (fsync, full-page writes), no database at start, a fresh one per test (``new_db``)."""

    def __init__(self, bindir: Path):
        super().__init__(bindir, ("fsync=off", "synchronous_commit=off", "full_page_writes=off"))
        self._names = itertools.count(1)

    def start(self, database: str | None = None) -> PgServer:
        super().start(database)
        return self

    def new_db(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t{next(self._names)}"
        with psycopg.connect(host=str(self.folder), port=self.port, user=self.USER, dbname="postgres",
                             autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url_of(name)


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
