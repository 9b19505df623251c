"""The MQTT sink's outbox, the store of store-and-forward (emoedge.edge.outputs.mqtt): one SQLite file
holding each interval's payload until the broker acknowledges it, then a short history."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from emoedge.core.errors import BadInputError
from emoedge.core.fileio import DEVICE_SQLITE_CACHE_KIB, create_sqlite, wal_connect

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    interval_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    created_unix_ns INTEGER NOT NULL,
    sent_unix_ns INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_unix_ns IS NULL;
"""


class Outbox:
    """The store of store-and-forward: one SQLite file, WAL; each thread uses its own connection.
    One that cannot be opened is refused before the first frame (bad input, exit 2)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        create_sqlite(self.path, OUTBOX_SCHEMA, "the MQTT outbox", BadInputError, full_sync=True)

    def connect(self) -> sqlite3.Connection:
        return wal_connect(self.path, full_sync=True, cache_kib=DEVICE_SQLITE_CACHE_KIB)

    @staticmethod
    def add(db: sqlite3.Connection, interval_id: str, payload: str) -> None:
        with db:
            db.execute("INSERT OR IGNORE INTO outbox (interval_id, payload, created_unix_ns) VALUES (?, ?, ?)",
                       (interval_id, payload, time.time_ns()))

    @staticmethod
    def pending(db: sqlite3.Connection, after_seq: int, limit: int) -> list[tuple[int, str, str]]:
        return db.execute("SELECT seq, interval_id, payload FROM outbox WHERE sent_unix_ns IS NULL AND seq > ? "
                          "ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()

    @staticmethod
    def prune(db: sqlite3.Connection, keep_sent_s: float) -> int:
        """Delete rows acknowledged more than ``keep_sent_s`` ago (the summaries database keeps the
        intervals; the outbox only what is still to send and a short history): the file stays bounded."""
        cutoff = time.time_ns() - int(keep_sent_s * 1e9)
        with db:
            return db.execute("DELETE FROM outbox WHERE sent_unix_ns IS NOT NULL AND sent_unix_ns < ?",
                              (cutoff,)).rowcount

    @staticmethod
    def mark_sent(db: sqlite3.Connection, seqs: list[int]) -> None:
        with db:
            db.executemany("UPDATE outbox SET sent_unix_ns = ? WHERE seq = ?", [(time.time_ns(), s) for s in seqs])

    def counts(self) -> dict[str, int]:
        db = self.connect()
        try:
            sent, unsent = db.execute("SELECT COUNT(sent_unix_ns), COUNT(*) - COUNT(sent_unix_ns) "
                                      "FROM outbox").fetchone()
        finally:
            db.close()
        return {"sent": sent, "unsent": unsent}


def default_outbox(db: str | None) -> Path:
    """Beside the summaries database when there is one, else in the working folder."""
    if db:
        return Path(db).with_name(Path(db).stem + ".mqtt-outbox.sqlite")
    return Path(os.getcwd()) / "emoedge.mqtt-outbox.sqlite"
