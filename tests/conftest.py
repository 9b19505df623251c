"""Test tiers: pure logic on synthetic records (no marker); Keras/TFLite on tiny models built in
the test (``slow``); real data in ../shared (``shared``, skipped with a reason when absent);
hardware (``hardware``, skipped unless the device is present). With ``EMOEDGE_REQUIRE_REAL=1`` (CI) a
skip for want of a real component (Mosquitto, Chromium, ../shared) is a failure (``real_components``)."""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # before anything imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from real_components import pytest_runtest_makereport  # noqa: F401  (the hook)

# the data helpers live in testdata.py; conftest re-exports them for files that still import them from here
from testdata import FER_CSV, FERPLUS_CSV, MEDIA, REPO, SHARED, face_like, need_shared, write_fer_csv  # noqa: F401


@pytest.fixture(scope="session")
def fer2013():
    need_shared(FER_CSV)
    from emoedge.data.datasets import load_fer2013_csv

    return load_fer2013_csv(FER_CSV)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory):
    """An untrained 7-class small CNN as float32 TFLite with its manifest (built in the test)."""
    from emoedge.convert.tflite import convert_file
    from emoedge.data.datasets import FER2013_CLASSES
    from emoedge.train import zoo

    d = tmp_path_factory.mktemp("tiny")
    m = zoo.build("small_cnn", 7, width=8)
    m.save(d / "tiny.keras")
    return convert_file(d / "tiny.keras", d / "tiny.tflite", "float32", FER2013_CLASSES)
