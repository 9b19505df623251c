"""Pure runtime logic on synthetic records: tracker, smoother, budget scheduler on a fake clock,
the latest-frame grabber, aggregation and sinks' crash safety."""

import json
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from emoedge.edge.faces.detect import Face, iou, nms
from emoedge.edge.faces.tracking import UNCERTAIN, EmaSmoother, IoUTracker, Track
from emoedge.edge.outputs.records import Aggregator, FaceEvent
from emoedge.edge.outputs.sinks import JsonlSink, SqliteSink, read_intervals
from emoedge.edge.runtime.scheduler import BudgetScheduler
from emoedge.edge.runtime.sources import SourceError, _LatestGrabber


def test_iou_and_nms():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]], float)
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.3) == [0, 2]


def test_tracker_keeps_ids_follows_and_drops():
    tr = IoUTracker(iou_threshold=0.3, max_misses=1)
    a, b = Face(0, 0, 20, 20), Face(100, 100, 20, 20)
    t = tr.update([a, b], 0)
    ids = {x.track_id for x in t}
    assert ids == {1, 2}
    t = tr.update([Face(4, 0, 20, 20), Face(102, 100, 20, 20)], 2)
    assert {x.track_id for x in t} == ids
    first = next(x for x in t if x.track_id == 1)
    assert first.velocity == (2.0, 0.0)
    tr.follow(3)
    assert first.box[0] == 6.0
    tr.update([Face(102, 100, 20, 20)], 4)           # track 1 missed once: kept
    assert {x.track_id for x in tr.tracks} == {1, 2}
    tr.update([Face(102, 100, 20, 20)], 5)           # missed twice: dropped
    assert {x.track_id for x in tr.tracks} == {2}
    tr.update([Face(300, 300, 20, 20)], 6)
    assert tr.total_tracks == 3


def test_smoother_ema_and_uncertain():
    sm = EmaSmoother(["a", "b"], alpha=0.5, threshold=0.6)
    t = Track(1, (0, 0, 1, 1), 0, 0)
    sm.observe(t, np.array([0.9, 0.1]), 0)
    assert t.label == "a" and t.confidence == pytest.approx(0.9)
    sm.observe(t, np.array([0.1, 0.9]), 1)           # (0.5, 0.5): not confident either way
    assert t.label == UNCERTAIN and t.last_classified_frame == 1
    sm.observe(t, np.array([0.1, 0.9]), 2)           # (0.3, 0.7)
    assert t.label == "b" and t.probs[1] == pytest.approx(0.7)
    with pytest.raises(ValueError):
        EmaSmoother(["a"], alpha=0)


def test_smoother_hysteresis_stops_flicker_at_the_threshold():
    """Confidence hovering around the threshold: without hysteresis the label flips on every frame,
    with it the label given first holds; leaving 'uncertain' needs threshold + h."""
    seq = [0.42, 0.38, 0.41, 0.37, 0.42, 0.39]
    labels = {}
    for h in (0.0, 0.05):
        sm = EmaSmoother(["a", "b"], alpha=1.0, threshold=0.4, hysteresis=h)
        t = Track(1, (0, 0, 1, 1), 0, 0)
        out = []
        for k, c in enumerate(seq):
            sm.observe(t, np.array([c, 0.3]), k)
            out.append(t.label)
        labels[h] = out
    assert labels[0.0] == ["a", UNCERTAIN, "a", UNCERTAIN, "a", UNCERTAIN]
    assert labels[0.05] == ["a"] * 6
    sm = EmaSmoother(["a", "b"], alpha=1.0, threshold=0.4, hysteresis=0.05)
    t = Track(1, (0, 0, 1, 1), 0, 0)
    for k, c in enumerate([0.30, 0.42, 0.44, 0.46]):
        sm.observe(t, np.array([c, 0.2]), k)
    assert t.label == "a"                                  # 0.46 >= 0.45: out of uncertain
    sm.observe(t, np.array([0.1, 0.34]), 5)                # another class on top, below the threshold
    assert t.label == UNCERTAIN
    with pytest.raises(ValueError):
        EmaSmoother(["a"], hysteresis=0.5)


def _tracks(n):
    return [Track(i + 1, (10 * i, 0, 8, 8), 0, 0) for i in range(n)]


def test_scheduler_cadence_and_rotation():
    s = BudgetScheduler(budget_ms=1000, detect_every=3, max_faces=2, adapt=False)
    tracks = _tracks(5)
    detects, seen = [], []
    for f in range(9):
        plan = s.plan(f, tracks)
        detects.append(plan.detect)
        chosen = s.choose(tracks, plan.max_faces)
        for t in chosen:
            t.last_classified_frame = f
        seen.append(tuple(t.track_id for t in chosen))
        assert len(chosen) == 2
    assert detects == [True, False, False, True, False, False, True, False, False]
    assert set(seen[0] + seen[1] + seen[2]) == {1, 2, 3, 4, 5}   # every face within ceil(5/2) frames
    assert s.plan(0, []).detect                                   # nothing tracked: detect at once


def test_scheduler_adapts_scale_faces_and_cadence_from_measured_times():
    s = BudgetScheduler(budget_ms=50, detect_every=2, max_faces=8, adapt=True, min_detect_scale=0.3)
    tracks = _tracks(8)
    # first frame: nothing measured yet, full scale
    p = s.plan(0, tracks)
    assert p.detect and p.detect_scale == 1.0
    assert not s.record(p, {"capture": 2, "detect": 80, "classify": 8, "preprocess": 0}, 8)  # 1 ms per face
    assert s.stats.misses_by_stage["detect"] == 1
    p = s.plan(1, tracks)
    assert not p.detect
    p = s.plan(2, tracks)                                         # detection due: shrink it to fit
    assert p.detect and p.detect_scale < 1.0
    assert 80 * p.detect_scale ** 2 + 2 + 1 <= 50 + 1e-6
    n = p.max_faces
    assert n == 1                                                 # what is left of the budget: one face
    assert s.record(p, {"capture": 2, "detect": 80 * p.detect_scale ** 2, "classify": 1.0 * n}, n)
    assert s.stats.hits == 1
    # detection becomes very expensive: smallest scale and a stretched cadence
    for f in range(3, 30):
        p = s.plan(f, tracks)
        if p.detect:
            s.record(p, {"detect": 5000 * p.detect_scale ** 2, "classify": 8}, 8)
    assert s.detect_scale == pytest.approx(0.3) and s.detect_every > 2
    with pytest.raises(ValueError, match="positive"):
        BudgetScheduler(0)


def test_scheduler_caps_faces_to_the_remaining_budget():
    s = BudgetScheduler(budget_ms=20, detect_every=100, max_faces=10, adapt=True)
    tracks = _tracks(10)
    p = s.plan(0, tracks)
    s.record(p, {"detect": 5, "classify": 30, "capture": 1}, 10)      # 3 ms per face
    p = s.plan(1, tracks)
    assert p.max_faces == (20 - 1) // 3


class _FakeClock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def test_latest_grabber_drops_stale_frames_and_never_queues():
    clock = _FakeClock()
    n = {"i": 0}

    def grab():
        n["i"] += 1
        time.sleep(0.002)
        return np.full((4, 4, 3), n["i"] % 255, np.uint8), None

    g = _LatestGrabber(grab, lambda: None, "fake", clock)
    try:
        first = g.read()
        time.sleep(0.1)                                   # the consumer is slow
        second = g.read()
        assert second.index > first.index + 1             # it got the newest frame, not the next queued one
        assert g.dropped >= second.index - first.index - 1 > 0
    finally:
        g.close()


def test_camera_that_stops_is_reconnected_with_backoff_then_gives_up():
    reopened = []
    calls = {"n": 0}

    def grab():
        calls["n"] += 1
        return (np.zeros((2, 2, 3), np.uint8), None) if calls["n"] <= 2 else None

    g = _LatestGrabber(grab, lambda: reopened.append(time.monotonic()), "cam", _FakeClock(), max_retries=3,
                       backoff_s=0.01)
    try:
        assert g.read() is not None
        with pytest.raises(SourceError, match="no frames after 3 reconnect attempts"):
            for _ in range(5):
                g.read(timeout_s=2.0)
        assert len(reopened) == 3
        gaps = np.diff(reopened)
        assert all(gaps[i + 1] > gaps[i] * 1.2 for i in range(len(gaps) - 1))   # exponential backoff
    finally:
        g.close()


def test_aggregator_intervals():
    ag = Aggregator(["happy", "sad"], interval_s=1.0)
    t1, t2 = Track(1, (0, 0, 1, 1), 0, 0), Track(2, (0, 0, 1, 1), 0, 0)
    t1.label, t1.confidence = "happy", 0.8
    t2.label, t2.confidence = UNCERTAIN, 0.3
    assert ag.add(0, [t1, t2]) is None
    ag.budget(True)
    assert ag.add(500_000_000, [t1]) is None
    ag.budget(False)                                   # this frame went over the latency budget
    done = ag.add(1_000_000_000, [])
    ag.budget(False)                                   # counts in the next interval, the frame's own
    assert done.frames == 2 and done.faces_seen == 2 and done.face_observations == 3 and done.budget_misses == 1
    assert done.share == {"happy": pytest.approx(2 / 3), "sad": 0.0, UNCERTAIN: pytest.approx(1 / 3)}
    assert done.mean_confidence == pytest.approx((0.8 + 0.3 + 0.8) / 3)
    last = ag.flush()
    assert last.frames == 1 and last.face_observations == 0 and last.budget_misses == 1


def test_sinks_write_readable_records(tmp_path):
    ag = Aggregator(["happy"], 1.0)
    t = Track(1, (0, 0, 1, 1), 0, 0)
    t.label, t.confidence = "happy", 0.9
    ag.add(0, [t])
    summary = ag.flush(10)
    j = JsonlSink(tmp_path / "e.jsonl")
    j.on_event(FaceEvent(5, 1, 1, "happy", None, 0.9, (0, 0, 1, 1)))
    j.on_interval(summary)
    j.close()
    lines = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [x["type"] for x in lines] == ["face", "interval"] and lines[0]["label"] == "happy"
    db = SqliteSink(tmp_path / "s.sqlite")
    db.on_interval(summary)
    db.close()
    rows = read_intervals(tmp_path / "s.sqlite")
    assert rows[0]["faces_seen"] == 1 and rows[0]["share"]["happy"] == 1.0


CRASHER = r"""
import sys, os
from emoedge.edge.outputs.records import IntervalSummary
from emoedge.edge.outputs.sinks import SqliteSink
db = SqliteSink(sys.argv[1])
for i in range(3):
    db.on_interval(IntervalSummary(f"r-{i}", "r", i * 10**9, (i + 1) * 10**9, 1.0, 10, 2, 20, {"happy": 1.0}, 0.9))
db.db.execute("BEGIN")
db.db.execute("INSERT INTO intervals (interval_id, run_id, start_utc, end_utc, start_unix_ns, end_unix_ns, duration_s, "
              "frames, faces_seen, face_observations, mean_confidence, share_json) "
              "VALUES ('r-9', 'r', '', '', 9, 9, 0, 1, 1, 1, 0.5, '{}')")
os._exit(9)   # killed mid-interval: no close, no commit
"""


def test_sqlite_survives_a_writer_killed_mid_interval(tmp_path):
    path = tmp_path / "s.sqlite"
    r = subprocess.run([sys.executable, "-c", CRASHER, str(path)], capture_output=True, text=True)
    assert r.returncode == 9, r.stderr
    rows = read_intervals(path)
    assert [r["interval_id"] for r in rows] == ["r-0", "r-1", "r-2"]   # the finished intervals, not the half one
    again = SqliteSink(path)                                  # and it reopens for writing
    again.close()
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_bad_database_path_is_a_clear_error(tmp_path):
    bad = tmp_path / "db.sqlite"
    bad.write_text("this is not a database")
    with pytest.raises(ValueError, match="db.sqlite: not a SQLite database"):
        SqliteSink(bad)


def test_systemd_notifier_sends_ready_and_watchdog(tmp_path):
    import socket

    from emoedge.edge.runtime.sdnotify import Notifier

    path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.notify("READY=1") and n.notify("WATCHDOG=1")
    assert srv.recv(64) == b"READY=1" and srv.recv(64) == b"WATCHDOG=1"
    n.close()
    srv.close()
    assert Notifier({}).notify("READY=1") is False


def test_export_summaries_as_csv(tmp_path):
    import csv

    from emoedge.cli import main
    from emoedge.edge.outputs.records import IntervalSummary

    db = SqliteSink(tmp_path / "s.sqlite")
    db.on_interval(IntervalSummary("r-1", "r", 1_700_000_000 * 10**9, 1_700_000_010 * 10**9, 10.0, 5, 2, 8,
                                   {"happy": 0.75, "uncertain": 0.25}, 0.6))
    db.close()
    assert main(["export", "--db", str(tmp_path / "s.sqlite"), "--csv", str(tmp_path / "s.csv")]) == 0
    with open(tmp_path / "s.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["share_happy"] == "0.7500" and rows[0]["faces_seen"] == "2"
    assert rows[0]["start_utc"] == "2023-11-14T22:13:20.000Z"      # wall clock, UTC
    assert main(["export", "--db", str(tmp_path / "none.sqlite"), "--csv", str(tmp_path / "x.csv")]) == 2


def test_display_on_headless_opencv_is_a_clear_error():
    import cv2

    from emoedge.edge.outputs.overlay import DisplaySink

    try:
        sink = DisplaySink()
    except RuntimeError as exc:
        assert "no window support" in str(exc) and "--no-display" in str(exc)
    else:  # a GUI OpenCV with a display: the window opened
        sink.close()
        assert hasattr(cv2, "imshow")
