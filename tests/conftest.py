"""Test tiers: pure logic on synthetic records (no marker); Keras/TFLite on tiny models built in
the test (``slow``); real data in ../shared (``shared``, skipped with a reason when absent);
hardware (``hardware``, skipped unless the device is present). With ``EMOEDGE_REQUIRE_REAL=1`` (CI) a
skip for want of a real component (Mosquitto, Chromium, ../shared) is a failure (``real_components``)."""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # before anything imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import numpy as np
import pytest
from real_components import pytest_runtest_makereport  # noqa: F401  (the hook)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOEDGE_SHARED", REPO.parent / "shared")).resolve()
FER_CSV = SHARED / "data" / "fer2013" / "fer2013.csv.gz"
FERPLUS_CSV = SHARED / "data" / "fer2013" / "fer2013new.csv"
MEDIA = SHARED / "media"


def need_shared(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent: real-data tests need ../shared (or EMOEDGE_SHARED)")


@pytest.fixture(scope="session")
def fer2013():
    need_shared(FER_CSV)
    from emoedge.data.datasets import load_fer2013_csv

    return load_fer2013_csv(FER_CSV)


class FakeClock:
    """A monotonic clock the test moves by hand (nanoseconds), for the runtime's injectable clocks."""

    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t

    def advance_ms(self, ms):
        self.t += int(ms * 1e6)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def face_like(rng, n, k):
    """Synthetic 48x48 'faces' whose class is visible (a bright band at a class-specific row)."""
    images = rng.integers(0, 60, size=(n, 48, 48)).astype(np.uint8)
    labels = np.arange(n) % k
    for i, c in enumerate(labels):
        r = 4 + int(c) * (40 // k)
        images[i, r:r + 4, :] = 230
    return images, labels


def write_fer_csv(path: Path, images, labels, usages) -> Path:
    import gzip

    lines = ["emotion,pixels,Usage"]
    for img, lab, u in zip(images, labels, usages):
        lines.append(f"{lab},{' '.join(str(int(v)) for v in img.reshape(-1))},{u}")
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


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
