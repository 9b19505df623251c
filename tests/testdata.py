"""Where the real data lives (../shared, or EMOEDGE_SHARED) and synthetic FER2013 data built in a test."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOEDGE_SHARED", REPO.parent / "shared")).resolve()
FER_CSV = SHARED / "data" / "fer2013" / "fer2013.csv.gz"
FERPLUS_CSV = SHARED / "data" / "fer2013" / "fer2013new.csv"
MEDIA = SHARED / "media"


def need_shared(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent: real-data tests need ../shared (or EMOEDGE_SHARED)")


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
