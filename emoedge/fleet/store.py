"""The fleet's SQLite file: every device's intervals (the ``interval_id`` is the key), each device's
last status, and counters of what arrived (stored, duplicate, conflict, rejected).

An interval that arrives twice with the same content (a device resends what the broker did not
acknowledge) is stored once and counted as a ``duplicate``; the same ``interval_id`` with other
content is a ``conflict`` (logged, the first copy kept). Every message is checked
(:mod:`emoedge.fleet.payload`) before it is written, so nothing invalid is stored; rows read back are
checked again, so a store written by an older version cannot break the page or the CSV either.
A device's interval ids are ``<run>-<seq>`` (seq from 1): :func:`sequence_gaps` counts the ones
that never arrived.
"""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
import time
from pathlib import Path

from emoedge.core.csvcells import safe_row
from emoedge.core.errors import BadInputError
from emoedge.core.fileio import create_sqlite, wal_connect
from emoedge.fleet.payload import MAX_NAME_CHARS, PayloadError, interval_fields, parse_interval

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS intervals (
    interval_id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    room TEXT,
    model TEXT,
    run_id TEXT,
    start_utc TEXT NOT NULL,
    end_utc TEXT NOT NULL,
    start_unix_ns INTEGER NOT NULL,
    end_unix_ns INTEGER NOT NULL,
    duration_s REAL,
    frames INTEGER,
    faces_seen INTEGER,
    face_observations INTEGER,
    uncertain_share REAL,
    mean_confidence REAL,
    share_json TEXT NOT NULL,
    received_unix_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS intervals_device_time ON intervals (device, start_unix_ns);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY,
    room TEXT,
    status TEXT,
    status_unix_ns INTEGER
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
COLUMNS = ("interval_id", "device", "room", "model", "run_id", "start_utc", "end_utc", "start_unix_ns", "end_unix_ns",
           "duration_s", "frames", "faces_seen", "face_observations", "uncertain_share", "mean_confidence")
STATUSES = ("online", "offline")


class FleetStore:
    """The fleet's SQLite file. Each thread opens its own connection (``connect``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        create_sqlite(self.path, SCHEMA, "the fleet store", BadInputError)

    def connect(self) -> sqlite3.Connection:
        return wal_connect(self.path)

    @staticmethod
    def _count(db: sqlite3.Connection, name: str) -> None:
        db.execute("INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
                   (name,))

    def ingest(self, db: sqlite3.Connection, topic: str, payload: bytes) -> str:
        """One MQTT message: ``stored``, ``duplicate``, ``conflict``, ``status`` or ``rejected`` (said in the log)."""
        return self.ingest_many(db, [(topic, payload)])[0]

    def ingest_many(self, db: sqlite3.Connection, messages: list[tuple[str, bytes]]) -> list[str]:
        """Messages written in one transaction (one commit for a burst); what became of each.
        Only a failing database raises (``sqlite3.Error``: nothing of the batch is written)."""
        with db:
            return [self._ingest(db, topic, payload) for topic, payload in messages]

    def _ingest(self, db: sqlite3.Connection, topic: str, payload: bytes) -> str:
        parts = topic.split("/")
        device = parts[-2] if len(parts) >= 3 else ""
        try:
            if parts[-1] == "status" and device:
                return self._status(db, device, payload)
            return self._insert(db, parse_interval(device, payload))
        except PayloadError as exc:
            log.warning("fleet: %.120s: message refused (%s): %r", topic, exc, payload[:120])
            self._count(db, "rejected")
            return "rejected"

    def _status(self, db: sqlite3.Connection, device: str, payload: bytes) -> str:
        status = payload.decode(errors="replace")
        if len(device) > MAX_NAME_CHARS or status not in STATUSES:
            raise PayloadError(f"a status must be online or offline from a device id of at most {MAX_NAME_CHARS} "
                               f"characters")
        db.execute("INSERT INTO devices (device, status, status_unix_ns) VALUES (?, ?, ?) ON CONFLICT(device) "
                   "DO UPDATE SET status = excluded.status, status_unix_ns = excluded.status_unix_ns",
                   (device, status, time.time_ns()))
        return "status"

    def _insert(self, db: sqlite3.Connection, row: dict) -> str:
        cur = db.execute(f"INSERT OR IGNORE INTO intervals ({', '.join(COLUMNS)}, share_json, received_unix_ns) "
                         f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})",
                         [row[k] for k in COLUMNS] + [json.dumps(row["share"]), time.time_ns()])
        if cur.rowcount:
            db.execute("INSERT INTO devices (device, room) VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET "
                       "room = COALESCE(excluded.room, devices.room)", (row["device"], row["room"]))
            kind = "stored"
        else:
            kind = "duplicate" if self._same(db, row) else "conflict"
        if kind == "conflict":
            log.warning("fleet: interval %.200s from %s: other content under a stored id; the first copy kept",
                        row["interval_id"], row["device"])
        self._count(db, kind)
        return kind

    @staticmethod
    def _same(db: sqlite3.Connection, row: dict) -> bool:
        old = db.execute(f"SELECT {', '.join(COLUMNS)}, share_json FROM intervals WHERE interval_id = ?",
                         (row["interval_id"],)).fetchone()
        return old is not None and list(old[:-1]) == [row[k] for k in COLUMNS] and json.loads(old[-1]) == row["share"]

    def rows(self, db: sqlite3.Connection | None = None) -> list[dict]:
        """Every valid interval, oldest first (rows that do not pass the checks are skipped and logged)."""
        own = db is None
        db = db or self.connect()
        try:
            raw = db.execute(f"SELECT {', '.join(COLUMNS)}, share_json FROM intervals "
                             f"ORDER BY start_unix_ns, device").fetchall()
        finally:
            if own:
                db.close()
        out, bad = [], 0
        for r in raw:
            try:
                out.append(interval_fields({**dict(zip(COLUMNS, r)), "share": json.loads(r[-1])}))
            except (PayloadError, ValueError, TypeError):
                bad += 1
        if bad:
            log.warning("fleet: %s: %d stored interval(s) are not valid and are left out", self.path, bad)
        return out

    def summary(self) -> dict:
        db = self.connect()
        try:
            rows = self.rows(db)
            devices = {d: {"room": room, "status": st, "status_unix_ns": t} for d, room, st, t in
                       db.execute("SELECT device, room, status, status_unix_ns FROM devices ORDER BY device")
                       if isinstance(d, str) and len(d) <= MAX_NAME_CHARS}
            counters = dict(db.execute("SELECT name, value FROM counters"))
        finally:
            db.close()
        return {"intervals": rows, "devices": devices, "counters": counters, "sequence": sequence_gaps(rows)}

    def export_csv(self, out) -> int:
        rows = self.rows()
        labels = sorted({k for r in rows for k in r["share"]})
        head = ["device", "room", "model", "start_utc", "end_utc", "interval_id", "run_id", "frames", "faces_seen",
                "face_observations", "uncertain_share", "mean_confidence"]
        w = csv.writer(out)
        w.writerow(safe_row(head + [f"share_{k}" for k in labels]))
        for r in rows:
            w.writerow(safe_row([r[k] for k in head] + [f"{r['share'].get(k, 0.0):.4f}" for k in labels]))
        return len(rows)


def sequence_gaps(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per device: runs seen, intervals received and ``missing`` (sequence numbers from 1 to the
    highest received of each run that never arrived), from ``<run>-<seq>`` interval ids."""
    runs: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        run, _, seq = r["interval_id"].rpartition("-")
        if run and seq.isascii() and seq.isdigit() and len(seq) <= 9:
            runs.setdefault((r["device"], run), set()).add(int(seq))
    out: dict[str, dict[str, int]] = {}
    for (device, _), seqs in sorted(runs.items()):
        d = out.setdefault(device, {"runs": 0, "received": 0, "missing": 0})
        got = {s for s in seqs if s >= 1}
        d["runs"] += 1
        d["received"] += len(seqs)
        d["missing"] += max(seqs) - len(got)
    return out
