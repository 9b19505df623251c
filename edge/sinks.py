"""Where results go: per-interval aggregates, a JSON Lines event stream, SQLite summaries for
offline sensors, and the overlay (window, kiosk full-screen, or a video file).

Privacy: no sink stores an image or a face crop; the overlay only draws on frames it is given,
and frames are written only by the video sink, which is made only when asked for.
Crash safety: events are flushed line by line; each interval is one SQLite transaction, so a
crash or power cut loses at most the interval in progress.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from emoedge.edge.tracking import UNCERTAIN, Track


@dataclass(frozen=True)
class FaceEvent:
    """A face whose smoothed label changed (or first got one)."""
    timestamp_ns: int
    frame: int
    track_id: int
    label: str
    previous: str | None
    confidence: float
    box: tuple[int, int, int, int]

    def to_dict(self) -> dict:
        return {"type": "face", **asdict(self), "box": list(self.box)}


@dataclass(frozen=True)
class IntervalSummary:
    start_ns: int
    end_ns: int
    frames: int
    faces_seen: int                    # distinct tracks seen in the interval
    face_observations: int             # (frame, face) pairs with a label
    share: dict[str, float]            # label -> share of observations (incl. "uncertain")
    mean_confidence: float

    def to_dict(self) -> dict:
        return {"type": "interval", **asdict(self)}


class Aggregator:
    """Accumulates per-frame face labels into interval summaries of ``interval_s`` seconds."""

    def __init__(self, class_names: Sequence[str], interval_s: float = 60.0):
        self.labels = tuple(class_names) + (UNCERTAIN,)
        self.interval_ns = int(interval_s * 1e9)
        self._reset(None)

    def _reset(self, start_ns: int | None) -> None:
        self.start_ns = start_ns
        self.frames = 0
        self.tracks: set[int] = set()
        self.counts = {c: 0 for c in self.labels}
        self.conf_sum = 0.0
        self.obs = 0
        self.last_ns = start_ns

    def add(self, timestamp_ns: int, tracks: Sequence[Track]) -> IntervalSummary | None:
        """Add one frame; returns the finished interval when this frame starts a new one."""
        done = None
        if self.start_ns is None:
            self._reset(timestamp_ns)
        elif timestamp_ns - self.start_ns >= self.interval_ns:
            done = self.flush(timestamp_ns)
            self._reset(timestamp_ns)
        self.frames += 1
        self.last_ns = timestamp_ns
        for t in tracks:
            self.tracks.add(t.track_id)
            if t.label is not None:
                self.counts[t.label] = self.counts.get(t.label, 0) + 1
                self.conf_sum += t.confidence
                self.obs += 1
        return done

    def flush(self, end_ns: int | None = None) -> IntervalSummary | None:
        if self.start_ns is None or self.frames == 0:
            return None
        end = end_ns if end_ns is not None else self.last_ns
        share = {c: (n / self.obs if self.obs else 0.0) for c, n in self.counts.items()}
        s = IntervalSummary(self.start_ns, int(end), self.frames, len(self.tracks), self.obs, share,
                            self.conf_sum / self.obs if self.obs else 0.0)
        self._reset(None)
        return s


class Sink:
    def on_frame(self, frame, tracks: Sequence[Track], scale: float) -> None: ...
    def on_event(self, event) -> None: ...          # FaceEvent or a monitor's DriftEvent
    def on_interval(self, summary: IntervalSummary) -> None: ...
    def close(self) -> None: ...


class JsonlSink(Sink):
    """One JSON object per line: face label changes and interval summaries; flushed per line."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a", buffering=1, encoding="utf-8")

    def _write(self, d: dict) -> None:
        self.fh.write(json.dumps(d) + "\n")
        self.fh.flush()

    def on_event(self, event) -> None:
        self._write(event.to_dict())

    def on_interval(self, summary: IntervalSummary) -> None:
        self._write(summary.to_dict())

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()


SCHEMA = """
CREATE TABLE IF NOT EXISTS intervals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    faces_seen INTEGER NOT NULL,
    face_observations INTEGER NOT NULL,
    mean_confidence REAL NOT NULL,
    share_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS interval_shares (
    interval_id INTEGER NOT NULL REFERENCES intervals(id),
    label TEXT NOT NULL,
    share REAL NOT NULL,
    PRIMARY KEY (interval_id, label)
);
"""


class SqliteSink(Sink):
    """Interval summaries in SQLite (WAL, one transaction per interval): for offline sensors."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(self.path))
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            self.db.commit()
        except sqlite3.DatabaseError as exc:
            raise RuntimeError(f"{self.path}: cannot use as the summaries database: {exc}") from exc

    def on_interval(self, s: IntervalSummary) -> None:
        with self.db:  # one transaction: all of the interval or none of it
            cur = self.db.execute(
                "INSERT INTO intervals (start_ns, end_ns, frames, faces_seen, face_observations, mean_confidence, "
                "share_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (s.start_ns, s.end_ns, s.frames, s.faces_seen, s.face_observations, s.mean_confidence,
                 json.dumps(s.share)))
            self.db.executemany("INSERT INTO interval_shares (interval_id, label, share) VALUES (?, ?, ?)",
                                [(cur.lastrowid, k, v) for k, v in s.share.items()])

    def close(self) -> None:
        try:
            self.db.commit()
            self.db.close()
        except sqlite3.ProgrammingError:
            pass  # already closed


def read_intervals(path: str | Path) -> list[dict]:
    db = sqlite3.connect(str(path))
    try:
        rows = db.execute("SELECT start_ns, end_ns, frames, faces_seen, face_observations, mean_confidence, "
                          "share_json FROM intervals ORDER BY id").fetchall()
    finally:
        db.close()
    keys = ("start_ns", "end_ns", "frames", "faces_seen", "face_observations", "mean_confidence", "share")
    return [dict(zip(keys, r[:-1] + (json.loads(r[-1]),))) for r in rows]


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
    """Overlay frames written to a video file (the only sink that stores images; opt-in)."""

    def __init__(self, path: str | Path, fps: float = 15.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.writer = None

    def on_frame(self, frame, tracks, scale) -> None:
        img = draw_overlay(frame.image, tracks, scale)
        if self.writer is not None and (img.shape[1], img.shape[0]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)  # a video has one frame size
        if self.writer is None:
            self.size = (img.shape[1], img.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() in (".mp4", ".m4v") else "MJPG"))
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (img.shape[1], img.shape[0]))
            if not self.writer.isOpened():
                raise RuntimeError(f"{self.path}: OpenCV cannot write this video file")
        self.writer.write(img)

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
    """Write the interval summaries of a SQLite file as CSV (one column per label); returns rows."""
    import csv

    rows = read_intervals(db_path)
    labels = sorted({k for r in rows for k in r["share"]})
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["start_ns", "end_ns", "frames", "faces_seen", "face_observations", "mean_confidence"]
                   + [f"share_{k}" for k in labels])
        for r in rows:
            w.writerow([r["start_ns"], r["end_ns"], r["frames"], r["faces_seen"], r["face_observations"],
                        f"{r['mean_confidence']:.4f}"] + [f"{r['share'].get(k, 0.0):.4f}" for k in labels])
    return len(rows)
