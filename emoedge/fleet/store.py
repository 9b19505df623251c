"""The fleet store: every device's intervals (the ``interval_id`` is the key), each device's last status,
counters of what arrived (stored, duplicate, conflict, rejected), and what the page reads instead of
the raw intervals (rollups per device per hour and day, runs for the gaps; :mod:`emoedge.fleet.schema`).

One interface, two databases: a SQLite file (a path: the zero-setup default for one school) or
PostgreSQL (``postgresql://USER@HOST[:PORT]/DB``: several ``fleet serve`` workers, a district, the
analysts' own SQL). :func:`open_store` picks by the spec; ``FleetStore(path)`` works as before.
The schema's version is checked at open (older: migrated; newer: refused, exit 2).

An interval that arrives twice with the same content (a device resends what the broker did not
acknowledge) is stored once and counted as a ``duplicate``; the same ``interval_id`` with other
content is a ``conflict`` (logged, the first copy kept): :mod:`emoedge.fleet.ingest`. Every message is
checked (:mod:`emoedge.fleet.payload`) before it is written, and rows read back are checked again,
so a store written by an older version cannot break the page or the CSV either. A device's interval
ids are ``<run>-<seq>`` (seq from 1): the ``runs`` table counts the ones that never arrived.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from emoedge.core.errors import BadInputError
from emoedge.fleet.backends import SqliteBackend, StoreError, StoreUnavailable, is_url
from emoedge.fleet.exports import csv_chunks, interval_rows, summary_chunks
from emoedge.fleet.ingest import ingest_batch, split_id, store_rows
from emoedge.fleet.migrations import prepare
from emoedge.fleet.payload import MAX_NAME_CHARS
from emoedge.fleet.queries import PageQuery, PageView, build_view
from emoedge.fleet.schema import COLUMNS, V1_SCHEMA

log = logging.getLogger(__name__)

SCHEMA = V1_SCHEMA         # the first fleet store's schema (version 1), as this module named it
RETRIES = 5
__all__ = ["COLUMNS", "SCHEMA", "FleetStore", "StoreError", "StoreUnavailable", "open_store", "sequence_gaps"]


def make_backend(spec: str | Path, password_file: str | Path | None = None):
    if isinstance(spec, str) and spec.split("://")[0] in ("postgresql", "postgres") and is_url(spec):
        from emoedge.fleet.pg_store import PgBackend

        return PgBackend(spec, password_file)
    if is_url(spec):
        raise BadInputError(f"--db {str(spec)[:200]!r}: not a SQLite file path nor a postgresql:// URL")
    if password_file:
        raise BadInputError("--db-password-file is for a postgresql:// store, not a SQLite file")
    return SqliteBackend(spec)


class FleetStore:
    """The fleet store on SQLite (a path) or PostgreSQL (a URL). Each thread opens its own connection
    (``connect``) and passes it to ``ingest_many``; reading methods open their own."""

    def __init__(self, spec: str | Path, password_file: str | Path | None = None):
        self.backend = make_backend(spec, password_file)
        self.path = self.backend.path           # the file, or the URL (no password in it)
        self._slots: dict = {}
        db = self.connect()
        try:
            self.migrated_from = prepare(self.backend, db)
        except self.backend.errors as exc:
            raise BadInputError(f"{self.backend.describe}: cannot use as the fleet store: {exc}") from exc
        finally:
            db.close()

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    def connect(self):
        return self.backend.connect()

    def ingest(self, db, topic: str, payload: bytes) -> str:
        """One MQTT message: ``stored``, ``duplicate``, ``conflict``, ``status`` or ``rejected`` (said in the log)."""
        return self.ingest_many(db, [(topic, payload)])[0]

    def ingest_many(self, db, messages: list[tuple[str, bytes]]) -> list[str]:
        """Messages written in one transaction (one commit for a burst); what became of each.
        Only a failing database raises (:class:`StoreError`, also a ``sqlite3.Error``: nothing of the batch
        is written). A deadlock or a lost race between writers is retried."""
        return self._retrying(lambda slots: ingest_batch(self.backend, db, messages, slots))

    def ingest_rows(self, db, rows: list[dict]) -> list[str]:
        """Intervals already checked (read from another store: :mod:`emoedge.fleet.copy`) written in one
        transaction like ``ingest_many``; ``stored``, ``duplicate`` or ``conflict`` for each."""
        return self._retrying(lambda slots: store_rows(self.backend, db, list(rows), rows, {}, slots))

    def _retrying(self, write) -> list[str]:
        for attempt in range(RETRIES):
            try:
                kinds, slots = write(dict(self._slots))
                self._slots = slots
                return kinds
            except self.backend.errors as exc:
                if attempt + 1 < RETRIES and self.backend.retryable(exc):
                    time.sleep(0.01 * (attempt + 1))
                    continue
                raise StoreError(f"fleet store {self.backend.describe}: {str(exc).strip()[:400]}") from exc
        raise AssertionError("unreachable")

    def _reading(self, db, fn):
        own = db is None
        db = db or self.connect()
        try:
            return fn(db)
        except self.backend.errors as exc:
            raise StoreError(f"fleet store {self.backend.describe}: {str(exc).strip()[:400]}") from exc
        finally:
            if own:
                db.close()

    def rows(self, db=None, query: PageQuery | None = None) -> list[dict]:
        """Every valid interval, oldest first, as a list (rows that do not pass the checks are left out).
        For small stores and tests: the page and the CSV stream instead."""
        return self._reading(db, lambda c: list(interval_rows(self.backend, c, query)))

    def view(self, query: PageQuery | None = None, db=None) -> PageView:
        """What the page draws, aggregated in the database."""
        return self._reading(db, lambda c: build_view(self.backend, c, query))

    def counts(self, db=None) -> dict[str, int]:
        """The counters (stored, duplicate, conflict, rejected) and ``intervals`` (rows in the store, counted):
        cheap, for a benchmark's "in = out" (``summary()`` reads every interval)."""
        def read(c):
            out = {k: int(v) for k, v in c.execute("SELECT name, value FROM counters")}
            out["intervals"] = int(c.execute("SELECT COUNT(*) FROM intervals").fetchone()[0])
            return out
        return self._reading(db, read)

    def sequence(self, db=None) -> dict[str, dict[str, int]]:
        """Per device: runs, intervals received, ``missing`` (from the runs table)."""
        sql = "SELECT device, COUNT(*), SUM(received), SUM(max_seq - counted) FROM runs GROUP BY device ORDER BY device"
        return self._reading(db, lambda c: {d: {"runs": int(n), "received": int(r), "missing": int(m)}
                                            for d, n, r, m in c.execute(sql)})

    def gaps_sql(self, db=None) -> dict[str, dict[str, int]]:
        """The same gaps computed from the intervals themselves (max(seq) - count(distinct seq) per run), in
        SQL: a check of the runs table, a scan of every interval."""
        sql = ("SELECT device, COUNT(*), SUM(n), SUM(mx - got) FROM (SELECT device, seq_run, COUNT(DISTINCT seq) AS n, "
               "MAX(seq) AS mx, COUNT(DISTINCT CASE WHEN seq >= 1 THEN seq END) AS got FROM intervals "
               "WHERE seq IS NOT NULL GROUP BY device, seq_run) AS r GROUP BY device ORDER BY device")
        return self._reading(db, lambda c: {d: {"runs": int(n), "received": int(r), "missing": int(m)}
                                            for d, n, r, m in c.execute(sql)})

    def summary(self) -> dict:
        """Everything as one dict (every interval: small stores and tests only) and the page's view (``page``)."""
        def read(db):
            devices = {d: {"room": room, "status": st, "status_unix_ns": t} for d, room, st, t in
                       db.execute("SELECT device, room, status, status_unix_ns FROM devices ORDER BY device")
                       if isinstance(d, str) and len(d) <= MAX_NAME_CHARS}
            return {"intervals": self.rows(db), "devices": devices,
                    "counters": {k: int(v) for k, v in db.execute("SELECT name, value FROM counters")},
                    "sequence": self.sequence(db), "page": build_view(self.backend, db)}
        return self._reading(None, read)

    def summary_chunks(self, query: PageQuery | None = None):
        """``/summary.json`` as byte chunks, streamed (its own connection, closed at the end)."""
        return self._stream(lambda db: summary_chunks(self.backend, db, query))

    def csv_chunks(self, query: PageQuery | None = None, counter: list | None = None):
        """``/intervals.csv`` as byte chunks, streamed (its own connection, closed at the end)."""
        return self._stream(lambda db: csv_chunks(self.backend, db, query, counter))

    def _stream(self, make):
        db = self.connect()
        try:
            yield from make(db)
        except self.backend.errors as exc:
            raise StoreError(f"fleet store {self.backend.describe}: {str(exc).strip()[:400]}") from exc
        finally:
            db.close()

    def export_csv(self, out, query: PageQuery | None = None) -> int:
        """The intervals as CSV into the text file ``out``, streamed; the number of rows."""
        n = [0]
        for chunk in self.csv_chunks(query, n):
            out.write(chunk.decode())
        return n[0]


def open_store(spec: str | Path, password_file: str | Path | None = None) -> FleetStore:
    """The fleet store of ``--db``: a SQLite file path or a ``postgresql://`` URL."""
    return FleetStore(spec, password_file)


def sequence_gaps(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per device: runs seen, intervals received and ``missing`` (sequence numbers from 1 to the
    highest received of each run that never arrived), from ``<run>-<seq>`` interval ids of ``rows``."""
    runs: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        parts = split_id(r["interval_id"])
        if parts:
            runs.setdefault((r["device"], parts[0]), set()).add(parts[1])
    out: dict[str, dict[str, int]] = {}
    for (device, _), seqs in sorted(runs.items()):
        d = out.setdefault(device, {"runs": 0, "received": 0, "missing": 0})
        d["runs"] += 1
        d["received"] += len(seqs)
        d["missing"] += max(seqs) - len({s for s in seqs if s >= 1})
    return out
