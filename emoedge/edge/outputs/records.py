"""What the runtime records: one run, a face's label change, an interval summary, and the
aggregation of frames into intervals. Every record carries wall-clock UTC time and a run id;
durations come from the monotonic clock."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from emoedge.edge.faces.tracking import UNCERTAIN, Track


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
    budget_misses: int = 0             # frames of the interval over the per-frame latency budget

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
        self.budget_misses = 0
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

    def budget(self, hit: bool) -> None:
        """The latest frame's latency budget outcome (after ``add``: it counts in that frame's interval)."""
        if not hit:
            self.budget_misses += 1

    def flush(self, end_ns: int | None = None, end_wall_ns: int | None = None) -> IntervalSummary | None:
        if self.start_ns is None or self.frames == 0:
            return None
        end = end_ns if end_ns is not None else self.last_ns
        end_wall = end_wall_ns if end_wall_ns is not None else self.last_wall_ns
        share = {c: (n / self.obs if self.obs else 0.0) for c, n in self.counts.items()}
        self.seq += 1
        s = IntervalSummary(f"{self.run_id}-{self.seq:06d}", self.run_id, int(self.start_wall_ns), int(end_wall),
                            (end - self.start_ns) / 1e9, self.frames, len(self.tracks), self.obs, share,
                            self.conf_sum / self.obs if self.obs else 0.0, self.budget_misses)
        self._reset(None, None)
        return s
