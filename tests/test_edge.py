"""The device side: no TensorFlow, Haar detection on real photos, classification of crops."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import MEDIA, need_shared

from emoedge.core.errors import ModelError
from emoedge.edge.engines.interpreter import TFLiteClassifier, make_interpreter
from emoedge.edge.faces.detect import HaarDetector
from emoedge.edge.inference.classify import FaceClassifier
from emoedge.edge.runtime.demo import demo_image


def test_device_side_never_imports_tensorflow():
    code = ("import sys, emoedge.edge.inference.classify, emoedge.edge.engines.interpreter, emoedge.edge.faces.detect, "
            "emoedge.core.shipped, emoedge.core.preprocess, emoedge.data.datasets, emoedge.metrics; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_demo_image_has_one_face_found_by_haar():
    img = demo_image()
    assert img.ndim == 3 and img.shape[2] == 3
    faces = HaarDetector().detect(img)
    assert len(faces) == 1 and faces[0].w > 100


@pytest.mark.shared
@pytest.mark.parametrize("name,count", [("obama.jpg", 1), ("two_people.jpg", 2), ("biden.jpg", 1),
                                        ("lin-manuel-miranda.png", 1)])
def test_haar_on_real_photos(name, count):
    need_shared(MEDIA / name)
    faces = HaarDetector().detect(cv2.imread(str(MEDIA / name)))
    assert len(faces) == count


def test_classifier_batches_and_reads_manifest(tiny_tflite):
    clf = FaceClassifier(tiny_tflite)
    preds = clf.classify_image(demo_image())
    assert len(preds) == 1
    p = preds[0]
    assert p.label in clf.class_names and abs(sum(p.probs) - 1) < 1e-4
    assert p.confidence == max(p.probs)
    unsure = FaceClassifier(tiny_tflite, min_confidence=1.01).classify_image(demo_image())
    assert unsure[0].label == "uncertain"
    raw = TFLiteClassifier(tiny_tflite)
    x = np.random.default_rng(0).random((5, 48, 48, 1)).astype(np.float32)
    batched = raw.predict(x)
    single = np.concatenate([raw.predict(x[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    with pytest.raises(ModelError, match="faces of shape"):
        raw.predict(np.zeros((1, 64, 64, 1), np.float32))


def test_edgetpu_delegate_absent_is_a_clear_error(tiny_tflite):
    with pytest.raises(ModelError, match="Edge TPU delegate was asked for"):
        make_interpreter(tiny_tflite, delegate="edgetpu")
    with pytest.raises(ValueError, match="delegate must be"):
        make_interpreter(tiny_tflite, delegate="gpu")


def test_model_without_class_names_is_refused(tiny_tflite, tmp_path):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(tiny_tflite.read_bytes())
    with pytest.raises(ModelError, match="no class names"):
        FaceClassifier(bare)
    with pytest.raises(ModelError, match="outputs 7 classes but the class list has 2"):
        FaceClassifier(bare, class_names=["a", "b"])


def test_backend_choice_is_said_and_fallback_is_explicit(tiny_tflite, monkeypatch):
    import builtins

    _, choice = make_interpreter(tiny_tflite)
    assert choice.backend == "litert" and choice.reason == "LiteRT is installed"
    real_import = builtins.__import__

    def no_litert(name, *a, **k):
        if name.startswith("ai_edge_litert") or name.startswith("tflite_runtime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_litert)
    import importlib

    monkeypatch.setattr(importlib, "import_module", lambda name, *a: no_litert(name))
    with pytest.raises(ModelError, match="no TFLite interpreter is installed.*pip install ai-edge-litert"):
        make_interpreter(tiny_tflite)


@pytest.mark.shared
def test_cross_dataset_check_with_a_class_mapping(tmp_path, fer2013, tiny_tflite):
    """A 7-class model scored on a folder dataset whose folders are named differently."""
    from emoedge.data.datasets import load_folder, select_classes
    from emoedge.evaluate import evaluate_model

    names = {"joy": "happy", "calm": "neutral", "shock": "surprise"}
    part = fer2013.split("PublicTest")
    for folder, cls in names.items():
        d = tmp_path / "lab" / folder
        d.mkdir(parents=True)
        for i in np.flatnonzero(part.labels == fer2013.class_names.index(cls))[:6]:
            cv2.imwrite(str(d / f"{i}.png"), part.images[i])
    ds = select_classes(load_folder(tmp_path / "lab"), rename=names)
    assert set(ds.class_names) == {"happy", "neutral", "surprise"}
    run = evaluate_model(tiny_tflite, ds)
    assert run.evaluation.n == 18 and run.evaluation.class_names == fer2013.class_names


def test_atomic_write_keeps_nothing_on_failure_and_hashes(tmp_path):
    import hashlib

    from emoedge.core.fileio import atomic_write_bytes, atomic_write_text, atomic_writer, sha256_file

    target = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_text(tmp_path / "b.txt", "two\n")
    assert target.read_bytes() == b"one" and (tmp_path / "b.txt").read_text() == "two\n"
    assert sha256_file(target) == hashlib.sha256(b"one").hexdigest()
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"one" and sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]


def test_one_detector_registry():
    from emoedge.edge.faces import fetch
    from emoedge.edge.faces.detect import DETECTORS, HaarDetector, make_detector
    from emoedge.edge.runtime.config import ConfigError, RuntimeConfig

    assert list(DETECTORS) == ["haar", "blazeface", "blazeface-full", "ssd"]
    assert isinstance(make_detector("haar"), HaarDetector)
    assert fetch.detector_files() == {n: k.files for n, k in DETECTORS.items() if k.files}
    for name in DETECTORS:
        assert RuntimeConfig(detector=name).detector == name
    with pytest.raises(ConfigError, match="must be one of haar, blazeface, blazeface-full, ssd"):
        RuntimeConfig(detector="yolo")
    with pytest.raises(ValueError, match="unknown detector model 'haar'"):
        fetch.locate("haar")
