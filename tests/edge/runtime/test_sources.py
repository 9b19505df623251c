"""Frame sources (emoedge.edge.runtime.sources, camera_sources, file_sources): bad inputs, Picamera2, reconnects, the
latest-frame grabber, loop and realtime replay."""

import json
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from fakes import FakeClassifier, FakeClock, FakeDetector, _video

from emoedge.cli import main
from emoedge.core.errors import ModelError
from emoedge.edge.faces.detect import Face
from emoedge.edge.inference.classify import FaceClassifier
from emoedge.edge.runtime.config import ConfigError, RuntimeConfig
from emoedge.edge.runtime.pipeline import Pipeline
from emoedge.edge.runtime.sources import SourceError, _LatestGrabber, open_source


@pytest.fixture
def clf(tiny_tflite):
    return FaceClassifier(tiny_tflite, min_confidence=0.0)


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


def test_one_unreadable_image_is_reported_and_skipped(tmp_path, capsys):
    from matplotlib import cbook

    img = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    for name in ("a.jpg", "c.jpg"):
        cv2.imwrite(str(tmp_path / name), img)
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    code = main(["run", "--source", str(tmp_path), "--model", "fast", "--summary-json", str(tmp_path / "s.json")])
    captured = capsys.readouterr()
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 2 and s["unreadable_inputs"] == 1 and code == 2
    assert "b.jpg: not a readable image" in captured.err


def test_an_image_larger_than_the_bound_is_refused_before_it_is_decoded(tmp_path, capsys):
    """Issue 28: a 442 KB PNG of 12000 x 12000 pixels took 3.7 GB for one frame; now exit 2 at once (alone)
    or skipped with its reason (in a folder with other images)."""
    from core.test_images import png_header_only

    big = tmp_path / "one" / "big.png"
    big.parent.mkdir()
    big.write_bytes(png_header_only(12000, 12000))
    assert main(["run", "--source", str(big), "--model", "fast", "--max-frames", "1"]) == 2
    assert "big.png: the image is 12000 x 12000 pixels" in capsys.readouterr().err
    folder = tmp_path / "many"
    folder.mkdir()
    big.rename(folder / "big.png")
    cv2.imwrite(str(folder / "small.png"), np.full((64, 64, 3), 128, np.uint8))
    code = main(["run", "--source", str(folder), "--model", "fast", "--summary-json", str(tmp_path / "s.json")])
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 1 and s["unreadable_inputs"] == 1 and code == 2
    assert "12000 x 12000 pixels" in capsys.readouterr().err


def test_loop_replays_a_video_and_a_folder(tmp_path):
    video = _video(tmp_path / "v.avi", frames=10)
    src = open_source(str(video), loop=True)
    frames = [src.read() for _ in range(25)]
    src.close()
    assert all(f is not None for f in frames) and [f.index for f in frames] == list(range(25))
    assert [i for i, f in enumerate(frames) if f.discontinuity] == [10, 20]
    s = Pipeline(RuntimeConfig(source=str(video), loop=True, max_frames=35, budget_ms=1000, status_every_s=0),
                 detector=FakeDetector(FakeClock(), [], 1), classifier=FakeClassifier()).run()
    assert s.frames == 35 and s.stopped_by == "max_frames"
    with pytest.raises(SourceError, match="--loop replays files"):
        open_source("0", loop=True)


def test_realtime_paces_a_file_at_its_frame_rate(tmp_path):
    video = _video(tmp_path / "v.avi", frames=15, fps=10.0)     # 1.5 s of video
    t = time.monotonic()
    s = Pipeline(RuntimeConfig(source=str(video), realtime=True, budget_ms=1000, status_every_s=0),
                 detector=FakeDetector(FakeClock(), [], 1), classifier=FakeClassifier()).run()
    took = time.monotonic() - t
    assert s.frames + s.dropped_frames == 15 and took >= 1.3, took
