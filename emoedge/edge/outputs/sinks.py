"""Where records go: the ``Sink`` interface and the storage sinks: a JSON Lines event stream and
SQLite interval summaries for offline sensors (and their CSV export), behind a free-space floor.

Privacy: no sink here stores an image or a face crop (the overlay sinks are in ``overlay``).
Crash safety: events are written line by line, torn lines cut; each interval is one SQLite
transaction, so a crash or power cut loses at most the interval in progress.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from emoedge.core.errors import BadInputError, WriteError
from emoedge.core.fileio import DEVICE_SQLITE_CACHE_KIB, atomic_writer
from emoedge.edge.faces.tracking import Track
from emoedge.edge.outputs.records import IntervalSummary, RunInfo

log = logging.getLogger(__name__)


class Sink:
    """What the pipeline gives a sink; a sink implements the kinds of record it takes (the pipeline
    gives a record only to sinks that override its method)."""

    path: Path | None = None
    record_of_truth = False   # the summaries database: the run's counts of records written are its

    def on_start(self, run: RunInfo) -> None:
        """A run begins."""

    def on_frame(self, frame, tracks: Sequence[Track], scale: float) -> None:
        """A processed frame and its tracks (boxes in work-plane pixels, ``scale`` to the frame)."""

    def on_event(self, event) -> None:
        """A face's label changed (FaceEvent) or the drift monitor fired (DriftEvent)."""

    def on_interval(self, summary: IntervalSummary) -> None:
        """An interval summary is complete."""

    def close(self) -> None:
        """Flush and release; raises WriteError when that fails."""


class DiskFloor:
    """The free-space floor: a record is written only while the disk holding ``path`` keeps more
    than ``min_free_mb`` free, so a full disk never leaves a torn file or a restart loop."""

    def __init__(self, min_free_mb: float = 50.0):
        self.min_free_bytes = int(min_free_mb * 1024 * 1024)

    def check(self, path: Path) -> None:
        if self.min_free_bytes <= 0:
            return
        try:
            free = shutil.disk_usage(path.parent if not path.is_dir() else path).free
        except OSError as exc:
            raise WriteError(f"{path}: cannot check free space: {exc.strerror or exc}") from exc
        if free < self.min_free_bytes:
            raise WriteError(f"{path}: only {free / 2**20:.1f} MB free, below the floor of "
                             f"{self.min_free_bytes / 2**20:.0f} MB (runtime.min_free_mb): not written")


class JsonlSink(Sink):
    """One JSON object per line: a ``run`` line at start, face label changes, interval summaries;
    each line written straight to the file (no buffer that could flush half a line later). A line
    cut short (disk full, power cut) is cut off again before the next line is written, so the
    file stays valid JSON Lines; one left by an earlier run is removed at start.

    Bounded on disk: when a line would take the file past ``max_bytes`` (0: no bound) it is rotated like
    a log (``events.jsonl`` -> ``events.jsonl.1`` -> ... ``.keep``, the oldest dropped) and the new file
    starts with the run's line again (``"continued": true``), so every file says which run it belongs to.
    Written by hand rather than with ``logging.handlers.RotatingFileHandler``: the lines here are
    records whose torn writes are repaired, not log messages."""

    def __init__(self, path: str | Path, floor: DiskFloor | None = None, max_bytes: int = 0, keep: int = 4):
        self.path = Path(path)
        self.floor = floor or DiskFloor(0)
        self.max_bytes = int(max_bytes)
        self.keep = max(1, int(keep))
        self._run_line: dict | None = None
        self._torn = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "ab", buffering=0)  # noqa: SIM115  (open for the sink's life)
            self._good = self._repair()
        except OSError as exc:
            raise WriteError(f"{self.path}: cannot open the events file: {exc.strerror or exc}") from exc

    def _rotate(self) -> None:
        """events.jsonl -> .1 -> ... -> .keep (the oldest dropped); a fresh file opened in its place."""
        try:
            self._cut_torn()
            os.fsync(self.fh.fileno())
            self.fh.close()
            for i in range(self.keep - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
            self.fh = open(self.path, "ab", buffering=0)  # noqa: SIM115  (open for the sink's life)
            self._good = 0
        except OSError as exc:
            # the record must not be lost for a rename: write on into the same file, unrotated, and say so
            log.error("%s: cannot rotate the events file (%s); writing on into it, rotation off for this run",
                      self.path, exc.strerror or exc)
            self.max_bytes = 0
            try:
                if self.fh.closed:
                    self.fh = open(self.path, "ab", buffering=0)  # noqa: SIM115  (open for the sink's life)
                self._good = os.fstat(self.fh.fileno()).st_size
            except OSError as exc2:
                raise WriteError(f"{self.path}: cannot reopen the events file: {exc2.strerror or exc2}") from exc2
            return
        log.info("%s: rotated at %.1f MB (keeping %d older files)", self.path, self.max_bytes / 2**20, self.keep)
        if self._run_line is not None:
            self._write({**self._run_line, "continued": True}, rotate=False)

    def _repair(self) -> int:
        """Cut a half-written last line (from an earlier run); returns the file's good size."""
        size = os.fstat(self.fh.fileno()).st_size
        if size == 0 or not self.path.is_file():
            return size
        with open(self.path, "rb") as fh:
            back = min(size, 1 << 20)
            fh.seek(size - back)
            tail = fh.read(back)
        if tail.endswith(b"\n"):
            return size
        cut = tail.rfind(b"\n")
        good = size - back + cut + 1 if cut >= 0 else (size - back if back < size else 0)
        os.ftruncate(self.fh.fileno(), good)
        log.warning("%s: removed a half-written last line (%d bytes) left by an earlier run", self.path, size - good)
        return good

    def _cut_torn(self) -> None:
        """Remove what a failed write left (O_APPEND: the next line goes where it ends)."""
        if self._torn and self.path.is_file():
            os.ftruncate(self.fh.fileno(), self._good)
        self._torn = False

    def _write(self, d: dict, rotate: bool = True) -> None:
        self.floor.check(self.path)
        data = memoryview((json.dumps(d) + "\n").encode())
        if rotate and self.max_bytes and self._good and self._good + len(data) > self.max_bytes:
            self._rotate()
        try:
            self._cut_torn()
            done = 0
            while done < len(data):
                n = self.fh.write(data[done:])
                if not n:
                    raise OSError(28, "No space left on device (short write)")
                done += n
                self._torn = done < len(data)
            self._good += len(data)
        except OSError as exc:
            self._torn = True
            try:
                self._cut_torn()
            except OSError as cut_exc:  # cannot even truncate: tried again before the next line
                log.error("%s: cannot remove a half-written line yet: %s", self.path, cut_exc)
            raise WriteError(f"{self.path}: {exc.strerror or exc}") from exc

    def on_start(self, run: RunInfo) -> None:
        self._run_line = run.to_dict()
        self._write(self._run_line)

    def on_event(self, event) -> None:
        self._write(event.to_dict())

    def on_interval(self, summary: IntervalSummary) -> None:
        self._write(summary.to_dict())

    def close(self) -> None:
        if self.fh.closed:
            return
        try:
            self._cut_torn()
            if self.path.is_file():
                os.fsync(self.fh.fileno())
        except OSError as exc:
            raise WriteError(f"{self.path}: {exc.strerror or exc}") from exc
        finally:
            self.fh.close()


SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    boot_id TEXT NOT NULL,
    started_utc TEXT NOT NULL,
    started_unix_ns INTEGER NOT NULL,
    host TEXT NOT NULL,
    source TEXT NOT NULL,
    model TEXT NOT NULL,
    detector TEXT NOT NULL,
    purpose TEXT,
    jurisdiction TEXT
);
CREATE TABLE IF NOT EXISTS intervals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    interval_id TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,               -- runs.run_id (no constraint: an interval outlives its run row)
    start_utc TEXT NOT NULL,
    end_utc TEXT NOT NULL,
    start_unix_ns INTEGER NOT NULL,
    end_unix_ns INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    frames INTEGER NOT NULL,
    faces_seen INTEGER NOT NULL,
    face_observations INTEGER NOT NULL,
    mean_confidence REAL NOT NULL,
    share_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS intervals_by_time ON intervals(end_unix_ns);
CREATE TABLE IF NOT EXISTS interval_shares (
    interval_id INTEGER NOT NULL REFERENCES intervals(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    share REAL NOT NULL,
    PRIMARY KEY (interval_id, label)
);
"""
INTERVAL_COLUMNS = ("interval_id", "run_id", "start_utc", "end_utc", "start_unix_ns", "end_unix_ns", "duration_s",
                    "frames", "faces_seen", "face_observations", "mean_confidence")


def _unusable(path: Path, exc: sqlite3.DatabaseError) -> str:
    if isinstance(exc, sqlite3.OperationalError):   # a valid file that cannot be opened (a read-only file system)
        return (f"{path}: cannot open the summaries database ({exc}); a read-only file system or folder, or no "
                f"permission? Give a writable --db path")
    return f"{path}: not a SQLite database ({exc})"


def _open_db(path: Path, create: bool) -> sqlite3.Connection:
    """Open a summaries database and check its schema version (``PRAGMA user_version``)."""
    db = None
    try:
        db = sqlite3.connect(str(path))
        db.execute("PRAGMA foreign_keys=ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        if db is not None:
            db.close()
        raise BadInputError(_unusable(path, exc)) from exc
    if version == SCHEMA_VERSION:
        return db
    db.close()
    if version == 0 and not tables:
        if not create:
            raise BadInputError(f"{path}: an empty database, no interval summaries in it")
        db = sqlite3.connect(str(path))
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.commit()
        return db
    if version == 0 and "intervals" in tables:
        raise BadInputError(f"{path}: written by an emoedge before summaries schema {SCHEMA_VERSION} (times since "
                            f"boot, no run ids), or by another program; it is left untouched. Export what it holds "
                            f"with an older emoedge or move it aside, then start again with a new file")
    if version > SCHEMA_VERSION:
        raise BadInputError(f"{path}: written by a newer emoedge (summaries schema {version}; this one knows "
                            f"{SCHEMA_VERSION}); it is left untouched: upgrade emoedge or use another file")
    raise BadInputError(f"{path}: not an emoedge summaries database (schema version {version}, tables "
                        f"{sorted(tables)}); it is left untouched: give another --db path")


class SqliteSink(Sink):
    """Interval summaries in SQLite (WAL, one transaction per interval): for offline sensors.

    The file carries its schema version (``PRAGMA user_version``), checked at start: a file of
    another schema is refused with a clear message before the first frame. Retention: intervals
    that ended more than ``retention_days`` ago are deleted (``prune``)."""

    record_of_truth = True

    def __init__(self, path: str | Path, floor: DiskFloor | None = None, retention_days: float | None = None):
        self.path = Path(path)
        self.floor = floor or DiskFloor(0)
        self.retention_days = retention_days
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WriteError(f"{self.path.parent}: cannot create the folder: {exc.strerror or exc}") from exc
        self.db = _open_db(self.path, create=True)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(f"PRAGMA cache_size=-{DEVICE_SQLITE_CACHE_KIB}")   # negative: KiB, not pages
        except sqlite3.DatabaseError as exc:
            raise WriteError(f"{self.path}: cannot use as the summaries database: {exc}") from exc

    def _tx(self, what: str, fn) -> None:
        self.floor.check(self.path)
        try:
            with self.db:  # one transaction: all of it or none of it
                fn()
        except sqlite3.Error as exc:
            raise WriteError(f"{self.path}: {what} not written: {exc}") from exc

    def on_start(self, run: RunInfo) -> None:
        self._tx("the run record", lambda: self.db.execute(
            "INSERT OR IGNORE INTO runs (run_id, boot_id, started_utc, started_unix_ns, host, source, model, "
            "detector, purpose, jurisdiction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run.run_id, run.boot_id, run.started_utc, run.started_unix_ns, run.host, run.source, run.model,
             run.detector, run.purpose, run.jurisdiction)))

    def on_interval(self, s: IntervalSummary) -> None:
        def write():
            cur = self.db.execute(
                f"INSERT OR IGNORE INTO intervals ({', '.join(INTERVAL_COLUMNS)}, share_json) "
                f"VALUES ({', '.join('?' * (len(INTERVAL_COLUMNS) + 1))})",
                (s.interval_id, s.run_id, s.start_utc, s.end_utc, s.start_unix_ns, s.end_unix_ns, s.duration_s,
                 s.frames, s.faces_seen, s.face_observations, s.mean_confidence, json.dumps(s.share)))
            if cur.rowcount:
                self.db.executemany("INSERT INTO interval_shares (interval_id, label, share) VALUES (?, ?, ?)",
                                    [(cur.lastrowid, k, v) for k, v in s.share.items()])
        self._tx(f"interval {s.interval_id}", write)

    def prune(self, now_unix_ns: int) -> int:
        """Delete intervals that ended more than ``retention_days`` ago; returns how many."""
        if self.retention_days is None:
            return 0
        cutoff = now_unix_ns - int(self.retention_days * 86400e9)
        try:
            with self.db:
                n = self.db.execute("DELETE FROM intervals WHERE end_unix_ns < ?", (cutoff,)).rowcount
                self.db.execute("DELETE FROM runs WHERE started_unix_ns < ? AND run_id NOT IN "
                                "(SELECT DISTINCT run_id FROM intervals)", (cutoff,))
        except sqlite3.Error as exc:
            raise WriteError(f"{self.path}: retention (deleting intervals older than {self.retention_days:g} "
                             f"days) failed: {exc}") from exc
        if n:
            log.info("%s: retention: deleted %d interval(s) older than %g days", self.path, n, self.retention_days)
        return n

    def close(self) -> None:
        try:
            self.db.commit()
            self.db.close()
        except sqlite3.ProgrammingError:
            pass  # already closed: nothing left to write
        except sqlite3.Error as exc:
            raise WriteError(f"{self.path}: closing failed: {exc}") from exc


def read_intervals(path: str | Path) -> list[dict]:
    """Every interval of a summaries database, oldest first (by wall-clock start), with its run."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: summaries database not found")
    db = _open_db(p, create=False)
    try:
        rows = db.execute(f"SELECT {', '.join('i.' + c for c in INTERVAL_COLUMNS)}, i.share_json, r.boot_id, "
                          f"r.purpose, r.jurisdiction FROM intervals i LEFT JOIN runs r USING (run_id) "
                          f"ORDER BY i.start_unix_ns, i.id").fetchall()
    finally:
        db.close()
    keys = INTERVAL_COLUMNS + ("share", "boot_id", "purpose", "jurisdiction")
    n = len(INTERVAL_COLUMNS)
    return [dict(zip(keys, r[:n] + (json.loads(r[n]),) + r[n + 1:])) for r in rows]


def export_csv(db_path: str | Path, csv_path: str | Path) -> int:
    """Write the interval summaries of a SQLite file as CSV (wall-clock UTC times, run and boot ids,
    one column per label), atomically (a temporary file renamed over the old one); returns rows."""
    import csv

    from emoedge.core.csvcells import safe_row

    rows = read_intervals(db_path)
    labels = sorted({k for r in rows for k in r["share"]})
    out = Path(csv_path)
    head = ["start_utc", "end_utc", "duration_s", "interval_id", "run_id", "boot_id", "frames", "faces_seen",
            "face_observations", "mean_confidence", "purpose", "jurisdiction"]
    try:
        with atomic_writer(out) as raw:
            fh = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            w = csv.writer(fh)
            w.writerow(safe_row(head + [f"share_{k}" for k in labels]))
            for r in rows:
                w.writerow(safe_row([r["start_utc"], r["end_utc"], f"{r['duration_s']:.3f}", r["interval_id"],
                                     r["run_id"], r["boot_id"], r["frames"], r["faces_seen"], r["face_observations"],
                                     f"{r['mean_confidence']:.4f}", r["purpose"] or "", r["jurisdiction"] or ""]
                                    + [f"{r['share'].get(k, 0.0):.4f}" for k in labels]))
            fh.flush()
            fh.detach()  # the atomic writer owns (and closes) the file
    except OSError as exc:
        raise WriteError(f"{out}: CSV export failed: {exc.strerror or exc}") from exc
    return len(rows)
