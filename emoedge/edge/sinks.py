"""Where results go: per-interval aggregates, a JSON Lines event stream, SQLite summaries for
offline sensors, and the overlay (window, kiosk full-screen, or a video file).

Privacy: no sink stores an image or a face crop; the overlay only draws on frames it is given,
and frames are written only by the video sink, which is made only when asked for.
Crash safety: events are flushed line by line; each interval is one SQLite transaction, so a
crash or power cut loses at most the interval in progress.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from emoedge.edge.errors import BadInputError, WriteError
from emoedge.edge.tracking import UNCERTAIN, Track

log = logging.getLogger(__name__)


def utc_iso(unix_ns: int) -> str:
    """Wall-clock time as ISO 8601 UTC with milliseconds: ``2026-11-30T07:44:45.123Z`` (sorts as text)."""
    return datetime.fromtimestamp(unix_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def boot_id(path: str = "/proc/sys/kernel/random/boot_id") -> str:
    """This boot's id (Linux); records from two boots never share one. Elsewhere: 'unknown'."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class RunInfo:
    """Who wrote a record: one per process run, stored once (SQLite ``runs``, a JSONL ``run`` line)."""
    run_id: str
    boot_id: str
    started_unix_ns: int
    source: str = ""
    model: str = ""
    detector: str = ""
    purpose: str | None = None
    jurisdiction: str | None = None
    host: str = ""

    @classmethod
    def new(cls, wall_ns: int | None = None, **kw) -> RunInfo:
        return cls(uuid.uuid4().hex[:16], boot_id(), time.time_ns() if wall_ns is None else wall_ns,
                   host=os.uname().nodename if hasattr(os, "uname") else "", **kw)

    @property
    def started_utc(self) -> str:
        return utc_iso(self.started_unix_ns)

    def to_dict(self) -> dict:
        return {"type": "run", **asdict(self), "started_utc": self.started_utc}


@dataclass(frozen=True)
class FaceEvent:
    """A face whose smoothed label changed (or first got one)."""
    time_unix_ns: int                  # wall clock (UTC)
    frame: int
    track_id: int
    label: str
    previous: str | None
    confidence: float
    box: tuple[int, int, int, int]
    run_id: str = ""

    def to_dict(self) -> dict:
        return {"type": "face", "time_utc": utc_iso(self.time_unix_ns), **asdict(self), "box": list(self.box)}


@dataclass(frozen=True)
class IntervalSummary:
    interval_id: str                   # run id + sequence number: the same interval always has the same id
    run_id: str
    start_unix_ns: int                 # wall clock (UTC) of the interval's first frame
    end_unix_ns: int                   # wall clock of its end
    duration_s: float                  # monotonic (or media) time the interval covers
    frames: int
    faces_seen: int                    # distinct tracks seen in the interval
    face_observations: int             # (frame, face) pairs with a label
    share: dict[str, float]            # label -> share of observations (incl. "uncertain")
    mean_confidence: float

    @property
    def start_utc(self) -> str:
        return utc_iso(self.start_unix_ns)

    @property
    def end_utc(self) -> str:
        return utc_iso(self.end_unix_ns)

    def to_dict(self) -> dict:
        return {"type": "interval", "start_utc": self.start_utc, "end_utc": self.end_utc, **asdict(self)}


class Aggregator:
    """Accumulates per-frame face labels into interval summaries of ``interval_s`` seconds.

    Interval boundaries follow the frames' monotonic (or media) timestamps, so a wall-clock jump
    (NTP, daylight saving) never makes an interval negative or endless; each summary records the
    wall-clock times of its first and last frame."""

    def __init__(self, class_names: Sequence[str], interval_s: float = 60.0, run_id: str = ""):
        self.labels = tuple(class_names) + (UNCERTAIN,)
        self.interval_ns = int(interval_s * 1e9)
        self.run_id = run_id
        self.seq = 0
        self._reset(None, None)

    def _reset(self, start_ns: int | None, start_wall_ns: int | None) -> None:
        self.start_ns = start_ns
        self.start_wall_ns = start_wall_ns
        self.frames = 0
        self.tracks: set[int] = set()
        self.counts = {c: 0 for c in self.labels}
        self.conf_sum = 0.0
        self.obs = 0
        self.last_ns = start_ns
        self.last_wall_ns = start_wall_ns

    def add(self, timestamp_ns: int, tracks: Sequence[Track], wall_ns: int | None = None) -> IntervalSummary | None:
        """Add one frame (``timestamp_ns`` monotonic or media time, ``wall_ns`` the wall clock);
        returns the finished interval when this frame starts a new one."""
        wall_ns = time.time_ns() if wall_ns is None else wall_ns
        done = None
        if self.start_ns is None:
            self._reset(timestamp_ns, wall_ns)
        elif timestamp_ns - self.start_ns >= self.interval_ns:
            done = self.flush(timestamp_ns, wall_ns)
            self._reset(timestamp_ns, wall_ns)
        self.frames += 1
        self.last_ns = timestamp_ns
        self.last_wall_ns = wall_ns
        for t in tracks:
            self.tracks.add(t.track_id)
            if t.label is not None:
                self.counts[t.label] = self.counts.get(t.label, 0) + 1
                self.conf_sum += t.confidence
                self.obs += 1
        return done

    def flush(self, end_ns: int | None = None, end_wall_ns: int | None = None) -> IntervalSummary | None:
        if self.start_ns is None or self.frames == 0:
            return None
        end = end_ns if end_ns is not None else self.last_ns
        end_wall = end_wall_ns if end_wall_ns is not None else self.last_wall_ns
        share = {c: (n / self.obs if self.obs else 0.0) for c, n in self.counts.items()}
        self.seq += 1
        s = IntervalSummary(f"{self.run_id}-{self.seq:06d}", self.run_id, int(self.start_wall_ns), int(end_wall),
                            (end - self.start_ns) / 1e9, self.frames, len(self.tracks), self.obs, share,
                            self.conf_sum / self.obs if self.obs else 0.0)
        self._reset(None, None)
        return s


class Sink:
    path: Path | None = None
    def on_start(self, run: RunInfo) -> None: ...   # noqa: E704
    def on_frame(self, frame, tracks: Sequence[Track], scale: float) -> None: ...   # noqa: E704
    def on_event(self, event) -> None: ...          # noqa: E704  FaceEvent or a monitor's DriftEvent
    def on_interval(self, summary: IntervalSummary) -> None: ...   # noqa: E704
    def close(self) -> None: ...   # noqa: E704


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
    file stays valid JSON Lines; one left by an earlier run is removed at start."""

    def __init__(self, path: str | Path, floor: DiskFloor | None = None):
        self.path = Path(path)
        self.floor = floor or DiskFloor(0)
        self._torn = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "ab", buffering=0)
            self._good = self._repair()
        except OSError as exc:
            raise WriteError(f"{self.path}: cannot open the events file: {exc.strerror or exc}") from exc

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

    def _write(self, d: dict) -> None:
        self.floor.check(self.path)
        data = memoryview((json.dumps(d) + "\n").encode())
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
        self._write(run.to_dict())

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


def _open_db(path: Path, create: bool) -> sqlite3.Connection:
    """Open a summaries database and check its schema version (``PRAGMA user_version``)."""
    try:
        db = sqlite3.connect(str(path))
        db.execute("PRAGMA foreign_keys=ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise BadInputError(f"{path}: not a SQLite database ({exc})") from exc
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


COLORS = {"happy": (0, 200, 0), "surprise": (0, 200, 255), "neutral": (200, 200, 200), "sad": (255, 120, 0),
          "angry": (0, 0, 255), "fear": (180, 0, 180), "disgust": (0, 120, 120), "contempt": (120, 120, 0),
          UNCERTAIN: (128, 128, 128)}


def draw_overlay(image: np.ndarray, tracks: Sequence[Track], scale: float = 1.0, status: str = "") -> np.ndarray:
    """Boxes, labels and confidence on a copy of ``image`` (boxes given in work-plane pixels)."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for t in tracks:
        x, y, w, h = (int(round(v * scale)) for v in t.box)
        color = COLORS.get(t.label or UNCERTAIN, (0, 200, 255))
        cv2.rectangle(out, (x, y), (x + w, y + h), color, 2)
        text = f"#{t.track_id} {t.label or '...'}" + (f" {t.confidence:.0%}" if t.label else "")
        cv2.putText(out, text, (x, max(14, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.55, color, 2)
    if status:
        cv2.putText(out, status, (8, out.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return out


class VideoSink(Sink):
    """Overlay frames written to a video file (the only sink that stores images; opt-in).

    The file plays at the source's own pace: it is written at ``fps`` (the source's frame rate)
    and each processed frame fills the slots up to its timestamp, so frames the pipeline skipped
    (a live camera faster than the budget, ``--realtime``) become repeats, not a sped-up video."""

    def __init__(self, path: str | Path, fps: float = 15.0, timed: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = float(fps)
        self.timed = timed            # False: one slot per frame (unrelated photos)
        self.writer = None
        self.written = 0
        self._t0: int | None = None

    def on_frame(self, frame, tracks, scale) -> None:
        if self.timed:
            if self._t0 is None:
                self._t0 = frame.timestamp_ns
            due = int(round((frame.timestamp_ns - self._t0) * self.fps / 1e9)) + 1 - self.written
            if due <= 0:
                return  # frames faster than the file's rate: this slot is written already
            due = min(due, int(self.fps * 10) + 1)  # a stall (camera reconnect) fills at most 10 s
        else:
            due = 1
        img = draw_overlay(frame.image, tracks, scale)
        if self.writer is not None and (img.shape[1], img.shape[0]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)  # a video has one frame size
        if self.writer is None:
            self.size = (img.shape[1], img.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() in (".mp4", ".m4v") else "MJPG"))
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (img.shape[1], img.shape[0]))
            if not self.writer.isOpened():
                raise WriteError(f"{self.path}: OpenCV cannot write this video file")
        for _ in range(due):
            self.writer.write(img)
        self.written += due

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


class DisplaySink(Sink):
    """A window (or a full-screen kiosk view) through OpenCV's HighGUI."""

    def __init__(self, fullscreen: bool = False, title: str = "emoedge"):
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
            if fullscreen:
                cv2.setWindowProperty(title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        except cv2.error as exc:
            raise RuntimeError("this OpenCV has no window support (opencv-python-headless, or no display): "
                               "install opencv-python on the kiosk and run under a desktop session, or use "
                               "--no-display / --video-out") from exc
        self.quit = False

    def on_frame(self, frame, tracks, scale) -> None:
        cv2.imshow(self.title, draw_overlay(frame.image, tracks, scale))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.quit = True

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass


def export_csv(db_path: str | Path, csv_path: str | Path) -> int:
    """Write the interval summaries of a SQLite file as CSV (wall-clock UTC times, run and boot ids,
    one column per label), atomically (a temporary file renamed over the old one); returns rows."""
    import csv

    rows = read_intervals(db_path)
    labels = sorted({k for r in rows for k in r["share"]})
    out = Path(csv_path)
    tmp = out.with_name(out.name + ".tmp")
    head = ["start_utc", "end_utc", "duration_s", "interval_id", "run_id", "boot_id", "frames", "faces_seen",
            "face_observations", "mean_confidence", "purpose", "jurisdiction"]
    try:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(head + [f"share_{k}" for k in labels])
            for r in rows:
                w.writerow([r["start_utc"], r["end_utc"], f"{r['duration_s']:.3f}", r["interval_id"], r["run_id"],
                            r["boot_id"], r["frames"], r["faces_seen"], r["face_observations"],
                            f"{r['mean_confidence']:.4f}", r["purpose"] or "", r["jurisdiction"] or ""]
                           + [f"{r['share'].get(k, 0.0):.4f}" for k in labels])
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WriteError(f"{out}: CSV export failed: {exc.strerror or exc}") from exc
    return len(rows)
