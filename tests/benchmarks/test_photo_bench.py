"""The photos benchmark (emoedge.benchmarks.photo_bench): detection once per (detector, photo),
shared by every model; a row per model and detector plus the whole-photo baseline; files written."""

import json
import shutil

import cv2
import numpy as np
import pytest

import emoedge.benchmarks.photo_bench as pb
from emoedge.benchmarks.classifiers import ClassifierSpec
from emoedge.evaluate.photos import WHOLE_PHOTO


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory):
    cbook = pytest.importorskip("matplotlib.cbook")
    face = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    root = tmp_path_factory.mktemp("photos")
    for d in ("happy", "sad"):
        (root / d).mkdir()
        shutil.copy(face, root / d / "a.jpg")
    cv2.imwrite(str(root / "happy" / "gray.png"), np.full((200, 200, 3), 128, np.uint8))
    return root


class _UniformPeer:
    """A stand-in peer runner: 7 classes, records the inputs it was given."""
    num_classes = 7

    def __init__(self):
        self.inputs = []

    def predict(self, x):
        self.inputs.append(x)
        p = np.zeros((len(x), 7), np.float32)
        p[:, 3] = 1.0   # happy
        return p


def test_bench_photos_detects_once_per_photo_and_writes_the_table(photo_tree, tmp_path, monkeypatch):
    calls = []
    real = pb.make_detector

    def counting(*a, **kw):
        det = real(*a, **kw)
        detect = det.detect

        def wrapped(image):
            calls.append(image.shape)
            return detect(image)
        det.detect = wrapped
        return det

    peer = _UniformPeer()
    monkeypatch.setattr(pb, "make_detector", counting)
    monkeypatch.setattr(pb, "open_runner", lambda spec, threads=None: peer)
    spec = ClassifierSpec("peer.tflite", name="peer", input_size=64, normalization="signed")
    res = pb.bench_photos(photo_tree, models=["fast", "fast"], peers=[spec], detectors=["haar"], pad=0.5)

    assert len(calls) == 3   # 3 photos, one detector: once each, whatever the number of models
    assert [a["name"] for a in res["models"]] == ["fast", "peer"]   # a model named twice runs once
    assert res["detection"]["haar"]["n_photos"] == 3
    assert res["detection"]["haar"]["n_detected"] == 2   # not the flat gray one
    rows = {(r["model"], r["detector"]) for r in res["rows"]}
    assert rows == {(m, d) for m in ("fast", "peer") for d in ("haar", WHOLE_PHOTO)}
    by = {(r["model"], r["detector"]): r for r in res["rows"]}
    assert by[("fast", WHOLE_PHOTO)]["detection_rate"] == 1.0
    assert by[("fast", "haar")]["detection_rate"] == pytest.approx(2 / 3)
    assert by[("peer", WHOLE_PHOTO)]["accuracy"] == pytest.approx(2 / 3)   # always "happy"
    assert all(x.shape == (1, 64, 64, 1) and x.min() >= -1 and x.max() <= 1 for x in peer.inputs)

    md = pb.write_photo_bench(res, tmp_path)
    for f in ("photos.json", "photos.md", "photos.png"):
        assert (tmp_path / f).stat().st_size > 0
    text = md.read_text()
    assert "| model | haar | whole photo |" in text
    assert text.count("| fast |") >= 1 and "| peer |" in text
    assert json.loads((tmp_path / "photos.json").read_text())["rows"]


def test_fer_crop_squares_and_grows_the_box():
    img = np.full((100, 100), 200, np.uint8)
    img[40:60, 30:70] = 0   # a 40x20 box, squared to 40x40 around it, + 10 px
    out = pb.fer_crop(img, (30, 40, 40, 20), size=60)
    assert out.shape == (60, 60)
    # the 40x20 dark box in a 60x60 crop: rows 20..40 dark, columns 10..50 dark
    assert out[30, 30] == 0 and out[5, 30] == 200 and out[30, 5] == 200
    edge = pb.fer_crop(img, (0, 0, 20, 20), size=40)   # off the frame: fer's black border
    assert edge[0, 0] == 0 and edge[-1, -1] == 200
