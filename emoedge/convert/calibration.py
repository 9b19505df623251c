"""The representative calibration set for full-integer quantization.

Drawn from the training split only, stratified by class with a floor per class (so rare classes
such as disgust are present), prepared by the same preprocessing as training and the runtime,
and fingerprinted so every artifact records exactly what calibrated it.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.core.errors import BadInputError
from emoedge.core.images import read_image
from emoedge.core.preprocess import INPUT_SIZE, face_to_gray48, normalize
from emoedge.data.datasets import DatasetError, FaceDataset, load_dataset
from emoedge.data.splits import SPLIT_SEED, standard_splits
from emoedge.edge.runtime.sources import IMAGE_SUFFIXES

MIN_RECOMMENDED = 100


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    x: np.ndarray                   # float32 (N, 48, 48, 1) in [0, 1]
    labels: np.ndarray              # int (N,), -1 where unlabelled
    class_names: tuple[str, ...]
    source: str
    fingerprint: str

    def __len__(self) -> int:
        return len(self.x)

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.class_names)}

    def describe(self) -> dict:
        return {"source": self.source, "size": len(self), "fingerprint_sha256": self.fingerprint,
                "per_class": self.counts(), "preprocessing": "emoedge.core.preprocess (gray48-unit)"}


def _fingerprint(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()


def _check(x: np.ndarray, source: str) -> None:
    if x.ndim != 4 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 1):
        raise BadInputError(f"{source}: calibration samples have shape {x.shape[1:]}, expected "
                         f"({INPUT_SIZE}, {INPUT_SIZE}, 1)")
    if len(x) == 0:
        raise BadInputError(f"{source}: the calibration set is empty")
    if len(x) < MIN_RECOMMENDED:
        warnings.warn(f"{source}: only {len(x)} calibration samples (at least {MIN_RECOMMENDED} recommended); "
                      f"activation ranges may be poorly estimated", stacklevel=3)


def stratified_sample(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Indices: per class a share proportional to its frequency, but at least
    ``size // (2 * classes)`` (or all it has), topped up at random to ``size``."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    size = min(size, len(labels))
    floor = size // (2 * len(classes))
    take = {c: min(n, max(floor, int(round(size * n / len(labels))))) for c, n in zip(classes, counts)}
    while sum(take.values()) > size:  # trim the largest classes back
        c = max(take, key=lambda k: take[k])
        take[c] -= 1
    chosen = [rng.choice(np.flatnonzero(labels == c), k, replace=False) for c, k in take.items()]
    idx = np.concatenate(chosen)
    if len(idx) < size:
        rest = np.setdiff1d(np.arange(len(labels)), idx)
        idx = np.concatenate([idx, rng.choice(rest, size - len(idx), replace=False)])
    return np.sort(idx)


def from_dataset(ds: FaceDataset, size: int = 300, seed: int = 0, val_fraction: float = 0.1) -> CalibrationSet:
    """A stratified sample of the training split (the same train/val split the trainer uses)."""
    if size <= 0:
        raise BadInputError(f"calibration size must be positive, got {size}")
    train = standard_splits(ds, val_fraction=val_fraction, seed=SPLIT_SEED)["train"]
    if len(train) == 0:
        raise DatasetError(f"{ds.source}: no training split to calibrate from")
    idx = stratified_sample(train.labels, size, seed)
    x = normalize(train.images[idx])
    _check(x, ds.source)
    return CalibrationSet(x, train.labels[idx], ds.class_names, f"{ds.source} [train]", _fingerprint(x))


def from_images(folder: str | Path, size: int = 300, seed: int = 0) -> CalibrationSet:
    """Unlabelled calibration from a flat folder of face crops (any size; made 48x48 gray)."""
    import cv2

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) to calibrate with")
    rng = np.random.default_rng(seed)
    files = [files[i] for i in sorted(rng.choice(len(files), min(size, len(files)), replace=False))]
    faces = []
    for p in files:
        try:
            img = read_image(p, cv2.IMREAD_UNCHANGED)
        except BadInputError as exc:                   # larger than the package's bound: never decoded
            warnings.warn(f"{exc}; skipped", stacklevel=2)
            continue
        if img is None:
            warnings.warn(f"{p}: unreadable image, skipped", stacklevel=2)
            continue
        faces.append(face_to_gray48(img))
    if not faces:
        raise DatasetError(f"{folder}: none of the {len(files)} images could be read")
    x = normalize(np.stack(faces))
    _check(x, str(folder))
    return CalibrationSet(x, np.full(len(x), -1), (), str(folder), _fingerprint(x))


def load_calibration(spec: str | Path, size: int = 300, seed: int = 0, labels: str = "auto") -> CalibrationSet:
    """From a dataset (FER2013 CSV or class-folder tree) or a flat folder of face images."""
    p = Path(spec)
    if not p.exists():
        raise DatasetError(f"{p}: calibration data not found")
    if p.is_dir() and not any(d.is_dir() for d in p.iterdir()):
        return from_images(p, size, seed)
    return from_dataset(load_dataset(p, labels=labels), size, seed)
