"""The face classifier (emoedge.edge.inference.classify): batches and manifests, class names, the detector's crop
geometry, no TensorFlow on the device."""

import subprocess
import sys

import numpy as np
import pytest

from emoedge.core.errors import ModelError
from emoedge.core.preprocess import IDENTITY, CropGeometry, preprocess_faces
from emoedge.edge.engines.interpreter import TFLiteClassifier
from emoedge.edge.faces.detect import Face, HaarDetector
from emoedge.edge.inference.classify import FaceClassifier
from emoedge.edge.runtime.demo import demo_image


def test_device_side_never_imports_tensorflow():
    code = ("import sys, emoedge.edge.inference.classify, emoedge.edge.engines.interpreter, emoedge.edge.faces.detect, "
            "emoedge.core.shipped, emoedge.core.preprocess, emoedge.data.datasets, emoedge.metrics; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


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


def test_model_without_class_names_is_refused(tiny_tflite, tmp_path):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(tiny_tflite.read_bytes())
    with pytest.raises(ModelError, match="no class names"):
        FaceClassifier(bare)
    with pytest.raises(ModelError, match="outputs 7 classes but the class list has 2"):
        FaceClassifier(bare, class_names=["a", "b"])


def test_classifier_applies_its_detectors_geometry():
    img = demo_image()
    clf = FaceClassifier.from_spec("fast", detector=HaarDetector())
    face = Face(150, 100, 230, 230)
    g = CropGeometry(scale_x=1.3, scale_y=1.3, shift_y=-0.1)
    a = clf.classify_faces(img, [face])[0].probs
    b = clf.classify_faces(img, [face], IDENTITY)[0].probs
    c = clf.classify_faces(img, [face], g)[0].probs
    expect_a = clf.predict(preprocess_faces(img, [face.box], geometry=HaarDetector.crop))[0]
    expect_c = clf.predict(preprocess_faces(img, [face.box], geometry=g))[0]
    np.testing.assert_allclose(a, expect_a, atol=1e-6)
    np.testing.assert_allclose(c, expect_c, atol=1e-6)
    assert not np.allclose(b, c)
