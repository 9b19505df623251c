"""The pipeline (emoedge.edge.runtime.pipeline): runs on real and synthetic sources, a fake clock, stops and signals,
crops, records and video out."""

import csv
import json
import shutil
import subprocess
import sys
import tracemalloc

import cv2
import numpy as np
import pytest
from fakes import FakeClassifier, FakeClock, FakeDetector, SyntheticSource, Wall, _DyingCamera, _video
from testdata import MEDIA, SHARED, need_shared

from emoedge.edge.faces.detect import BlazeFaceDetector, Face, HaarDetector, OpenCVSSDDetector
from emoedge.edge.faces.tracking import visible_fraction
from emoedge.edge.inference.classify import FaceClassifier
from emoedge.edge.outputs.sinks import export_csv, read_intervals
from emoedge.edge.runtime.config import RuntimeConfig
from emoedge.edge.runtime.pipeline import Pipeline

DETECTORS = SHARED / "detectors"

VIDEO = MEDIA / "short_hamilton_clip.mp4"


@pytest.fixture
def clf(tiny_tflite):
    return FaceClassifier(tiny_tflite, min_confidence=0.0)


@pytest.mark.shared
@pytest.mark.parametrize("detector", ["haar", "blazeface"])
def test_real_video_end_to_end(detector, clf, tmp_path):
    need_shared(VIDEO)
    det = HaarDetector() if detector == "haar" else BlazeFaceDetector(DETECTORS / "face_detection_short_range.tflite")
    cfg = RuntimeConfig(source=str(VIDEO), detector=detector, budget_ms=1000, detect_every=1, interval_s=2.0,
                        events=str(tmp_path / "ev.jsonl"), db=str(tmp_path / "s.sqlite"), uncertain_below=0.0)
    summary = Pipeline(cfg, detector=det, classifier=clf).run()
    assert summary.frames == 275 and summary.stopped_by == "end"
    assert summary.frames_with_faces >= 0.6 * summary.frames, summary.text()
    events = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert any(e["type"] == "face" for e in events) and any(e["type"] == "interval" for e in events)
    rows = read_intervals(tmp_path / "s.sqlite")
    assert len(rows) == summary.intervals_written >= 4      # 275 frames at 29.97 fps in 2 s intervals
    assert sum(r["frames"] for r in rows) == 275
    assert summary.latency["frame"].p50_ms > 0


@pytest.mark.shared
def test_images_folder_with_ssd_and_video_out(clf, tmp_path):
    need_shared(DETECTORS / "opencv_face_detector_uint8.pb")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for n in ("obama.jpg", "two_people.jpg", "biden.jpg"):
        shutil.copy(MEDIA / n, folder / n)
    det = OpenCVSSDDetector(DETECTORS / "opencv_face_detector_uint8.pb", DETECTORS / "opencv_face_detector.pbtxt")
    cfg = RuntimeConfig(source=str(folder), budget_ms=5000, detect_every=1, video_out=str(tmp_path / "o.avi"))
    s = Pipeline(cfg, detector=det, classifier=clf).run()
    assert s.frames == 3 and s.faces_seen >= 4
    cap = cv2.VideoCapture(str(tmp_path / "o.avi"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


class TimedClassifier:
    """Wraps a real classifier and charges ``ms_per_face`` on the fake clock."""

    def __init__(self, real, clock, ms_per_face):
        self.real, self.clock, self.ms = real, clock, ms_per_face
        self.class_names, self.margin, self.model_path = real.class_names, 0.0, real.model_path
        self.batches = []

    def predict(self, batch):
        self.batches.append(len(batch))
        self.clock.advance_ms(self.ms * len(batch))
        return self.real.predict(batch)


def test_pipeline_on_a_fake_clock_is_deterministic(clf):
    def one_run():
        clock = FakeClock()
        faces = [Face(10 + 60 * i, 20, 50, 50) for i in range(5)]
        det = FakeDetector(clock, faces, full_ms=100.0)
        tc = TimedClassifier(clf, clock, ms_per_face=4.0)
        cfg = RuntimeConfig(budget_ms=66, detect_every=3, max_faces=4, adapt=True)
        s = Pipeline(cfg, source=SyntheticSource(clock, 60), detector=det, classifier=tc, clock=clock).run()
        return s, det, tc

    s1, det, tc = one_run()
    s2, _, _ = one_run()
    d1, d2 = s1.to_dict(), s2.to_dict()
    assert d1.pop("run_id") != d2.pop("run_id")          # each run has its own id
    d1.pop("started_utc"), d2.pop("started_utc")
    assert d1 == d2
    assert det.scales[0] == 1.0 and min(det.scales) < 0.8        # detection shrunk after the first miss
    assert max(tc.batches) <= 4 and s1.classifications == sum(tc.batches)
    assert s1.budget_misses >= 1 and s1.misses_by_stage["detect"] >= 1
    assert s1.budget_hits > s1.budget_misses                     # adapted: most frames within budget
    assert s1.faces_seen == 5 and s1.frames == 60


def test_zero_faces_fifty_faces_border_faces_and_gray_frames(clf):
    clock = FakeClock()
    many = [Face(x * 30, y * 30, 28, 28) for x in range(10) for y in range(5)]
    border = [Face(-10, -10, 40, 40), Face(300, 220, 40, 40)]
    for faces, shape in (([], (240, 320, 3)), (many, (240, 320, 3)), (border, (240, 320)), (border, (240, 320, 1))):
        det = FakeDetector(clock, faces, 1.0)
        cfg = RuntimeConfig(budget_ms=1000, detect_every=1, max_faces=64, adapt=False)
        s = Pipeline(cfg, source=SyntheticSource(clock, 3, shape), detector=det, classifier=clf, clock=clock).run()
        inside = [f for f in faces if visible_fraction(f.box, shape[1], shape[0]) >= 0.5]  # mostly outside: not tracked
        assert s.frames == 3 and s.faces_seen == len(inside)
        assert s.classifications == 3 * len(inside)
    assert visible_fraction(border[0].box, 320, 240) > 0.5 > visible_fraction(border[1].box, 320, 240)


def test_stop_flushes_every_sink(clf, tmp_path):
    clock = FakeClock()
    det = FakeDetector(clock, [Face(10, 10, 50, 50)], 1.0)
    cfg = RuntimeConfig(budget_ms=1000, interval_s=3600, events=str(tmp_path / "e.jsonl"), db=str(tmp_path / "d.db"))
    p = Pipeline(cfg, source=SyntheticSource(clock, 10_000), detector=det, classifier=clf, clock=clock)
    orig = p.source.read

    def read():
        if p.source.i == 25:
            p.stop("signal")
        return orig()

    p.source.read = read
    s = p.run()
    assert s.stopped_by == "signal" and 25 <= s.frames <= 26
    rows = read_intervals(tmp_path / "d.db")
    assert len(rows) == 1 and rows[0]["frames"] == s.frames       # the open interval was written at stop
    assert json.loads((tmp_path / "e.jsonl").read_text().splitlines()[-1])["type"] == "interval"


def test_sigterm_stops_a_running_pipeline(tmp_path, tiny_tflite):
    code = f"""
import os, signal, threading, json
from emoedge.edge.runtime.config import RuntimeConfig
from emoedge.edge.runtime.pipeline import Pipeline
from emoedge.edge.inference.classify import FaceClassifier
p = Pipeline(RuntimeConfig(source="demo", db={str(tmp_path / 'x.db')!r}, budget_ms=1000),
             classifier=FaceClassifier({str(tiny_tflite)!r}))
p.source.repeat = 10**9
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
s = p.run()
print(json.dumps({{"stopped_by": s.stopped_by, "frames": s.frames}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["stopped_by"] == "signal" and out["frames"] > 0
    assert read_intervals(tmp_path / "x.db")[0]["frames"] == out["frames"]


def test_pipeline_never_imports_tensorflow(tiny_tflite):
    code = f"""
import sys
from emoedge.edge.runtime.config import RuntimeConfig
from emoedge.edge.runtime.pipeline import Pipeline
from emoedge.edge.inference.classify import FaceClassifier
s = Pipeline(RuntimeConfig(source="demo", budget_ms=1000), classifier=FaceClassifier({str(tiny_tflite)!r})).run(5)
assert s.frames == 5 and s.faces_seen == 1, s
bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]
print(bad)
sys.exit(1 if bad else 0)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_camera_that_dies_mid_run_stops_cleanly_and_keeps_the_record(clf, tmp_path):
    clock = FakeClock()
    det = FakeDetector(clock, [Face(10, 10, 50, 50)], 1.0)
    cfg = RuntimeConfig(budget_ms=1000, interval_s=3600, db=str(tmp_path / "d.db"), events=str(tmp_path / "e.jsonl"))
    s = Pipeline(cfg, source=_DyingCamera(clock, 12), detector=det, classifier=clf, clock=clock).run()
    assert s.stopped_by == "source_failed" and s.frames == 12
    assert read_intervals(tmp_path / "d.db")[0]["frames"] == 12


def test_pipeline_crops_faces_with_its_detectors_geometry(clf, tmp_path):
    """The runtime cuts the face the way the detector's CropGeometry says (the one preprocessing)."""
    from emoedge.core.preprocess import IDENTITY, CropGeometry

    frame = np.zeros((240, 320, 3), np.uint8)
    frame[80:160, 120:200] = 255                       # the "face": a white 80x80 square
    cv2.imwrite(str(tmp_path / "f.png"), frame)

    class BoxDetector:
        name = "box"

        def __init__(self, crop):
            self.crop = crop

        def detect(self, image, scale=1.0):
            return [Face(120, 80, 80, 80)]

    class Recorder:
        def __init__(self, real):
            self.real, self.class_names, self.margin, self.model_path = real, real.class_names, 0.0, real.model_path
            self.means = []

        def predict(self, batch):
            self.means.append(float(batch.mean()))
            return self.real.predict(batch)

    means = {}
    for name, geometry in (("box", IDENTITY), ("twice", CropGeometry(2.0, 2.0))):
        rec = Recorder(clf)
        cfg = RuntimeConfig(source=str(tmp_path / "f.png"), budget_ms=5000, detect_every=1)
        Pipeline(cfg, detector=BoxDetector(geometry), classifier=rec).run()
        means[name] = rec.means[0]
    assert means["box"] == pytest.approx(1.0)
    assert means["twice"] == pytest.approx(0.25, abs=0.02)   # the 80x80 face inside a 160x160 crop


class WalkingDetector:
    """A face that walks right and leaves; a new one enters every ``period`` detections."""
    name = "walking"

    def __init__(self, period=20):
        self.calls, self.period = 0, period

    def detect(self, frame, scale=1.0):
        self.calls += 1
        x = (self.calls % self.period) * 16
        return [Face(x, 40, 60, 60)] if x + 60 <= frame.shape[1] else []


def _traced_peak(frames):
    clock = FakeClock()
    p = Pipeline(RuntimeConfig(budget_ms=1000, detect_every=3, interval_s=3600, status_every_s=0),
                 source=SyntheticSource(clock, frames, (120, 320, 3)), detector=WalkingDetector(),
                 classifier=FakeClassifier(), clock=clock, sinks=[])
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    s = p.run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert s.frames == frames and s.faces_seen >= 5
    return peak - base


def test_pipeline_memory_does_not_grow_with_the_number_of_frames():
    short, long = _traced_peak(500), _traced_peak(5000)
    # before: 7 latency lists and the ended tracks grew by ~350 bytes a frame (1.6 MB over 4,500 frames)
    assert long - short < 150_000, (short, long)


def test_records_carry_wall_clock_time_and_sort_across_a_reboot(tmp_path):
    db, ev = tmp_path / "s.sqlite", tmp_path / "e.jsonl"
    t_before = 1_790_000_000 * 10**9             # 2026-09-21
    for mono_start, wall_start in ((10**15, t_before), (1_000, t_before + 3600 * 10**9)):  # reboot: monotonic restarts
        clock = FakeClock()
        clock.t = mono_start
        cfg = RuntimeConfig(budget_ms=1000, interval_s=0.01, db=str(db), events=str(ev), status_every_s=0)
        p = Pipeline(cfg, source=SyntheticSource(clock, 30), detector=FakeDetector(clock, [Face(10, 10, 60, 60)], 1),
                     classifier=FakeClassifier(), clock=clock, wall_clock=Wall(wall_start))
        s = p.run()
        assert s.exit_code == 0 and s.intervals_written >= 2
    rows = read_intervals(db)
    runs = [r["run_id"] for r in rows]
    first_run = runs[0]
    assert runs == sorted(runs, key=lambda r: r != first_run)    # every interval of the first boot comes first
    assert rows[0]["start_utc"].startswith("2026-09-21T") and rows[-1]["start_utc"] > rows[0]["start_utc"]
    assert all(r["start_unix_ns"] >= t_before and r["duration_s"] >= 0 for r in rows)
    assert all(r["boot_id"] for r in rows)
    lines = [json.loads(x) for x in ev.read_text().splitlines()]
    assert [x["type"] for x in lines].count("run") == 2
    assert all(x["time_utc" if x["type"] in ("face", "run") and "time_utc" in x else "start_utc"
                 if x["type"] == "interval" else "started_utc"].startswith("2026-09-21") for x in lines)
    export_csv(db, tmp_path / "s.csv")
    with open(tmp_path / "s.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["start_utc"] for r in table] == sorted(r["start_utc"] for r in table)
    assert table[0]["run_id"] == first_run and table[0]["start_utc"].endswith("Z")


def test_a_lost_camera_exits_3(tmp_path):
    clock = FakeClock()
    s = Pipeline(RuntimeConfig(budget_ms=1000, db=str(tmp_path / "d.db"), status_every_s=0),
                 source=_DyingCamera(clock, 4), detector=FakeDetector(clock, [], 1), classifier=FakeClassifier(),
                 clock=clock).run()
    assert s.stopped_by == "source_failed" and s.exit_code == 3 and read_intervals(tmp_path / "d.db")


def test_video_out_plays_at_the_sources_pace(tmp_path):
    video = _video(tmp_path / "v.avi", frames=24, fps=12.0)
    out = tmp_path / "out.avi"
    s = Pipeline(RuntimeConfig(source=str(video), video_out=str(out), budget_ms=1000, status_every_s=0),
                 detector=FakeDetector(FakeClock(), [], 1), classifier=FakeClassifier()).run()
    cap = cv2.VideoCapture(str(out))
    fps, n = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert s.frames == 24 and fps == pytest.approx(12.0) and n == 24     # 2 s in, 2 s out
