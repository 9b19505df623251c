"""The FER2013 CSV (``emotion,pixels,Usage``; plain or ``.gz``): its 7 classes and its reader, and
the file helpers the FER+ votes reader shares."""

from __future__ import annotations

import csv
import gzip
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emoedge.core.preprocess import INPUT_SIZE
from emoedge.data.faces import DatasetError, FaceDataset

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: {what} not found")
    if path.is_dir():
        raise DatasetError(f"{path}: expected a {what} file, found a directory")
    return path


def load_fer2013_csv(path: str | os.PathLike, usage: Sequence[str] | None = None) -> FaceDataset:
    """Read the canonical FER2013 CSV (``emotion,pixels,Usage``; plain or ``.gz``).

    ``usage`` keeps only rows whose Usage is listed. Row numbers in errors and ``ids`` count
    data rows from 1 (the header is row 0). A bad row is an error naming the file and row.
    """
    path = require_file(Path(path), "FER2013 CSV")
    want = None if usage is None else {u.lower() for u in usage}
    images, labels, splits, ids = [], [], [], []
    try:
        with open_text(path) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path}: empty file, expected a header 'emotion,pixels,Usage'")
            cols = [c.strip().lower() for c in header]
            try:
                ie, ip = cols.index("emotion"), cols.index("pixels")
            except ValueError:
                raise DatasetError(f"{path}: header {header} lacks 'emotion' and 'pixels' columns") from None
            iu = cols.index("usage") if "usage" in cols else None
            npix = INPUT_SIZE * INPUT_SIZE
            for rownum, row in enumerate(reader, start=1):
                if not row:
                    continue
                split = row[iu].strip() if iu is not None and iu < len(row) else "all"
                if want is not None and split.lower() not in want:
                    continue
                try:
                    label = int(row[ie])
                except (ValueError, IndexError):
                    raise DatasetError(f"{path}: row {rownum}: emotion {row[ie] if ie < len(row) else None!r} "
                                       f"is not an integer 0..6") from None
                if not 0 <= label < len(FER2013_CLASSES):
                    raise DatasetError(f"{path}: row {rownum}: emotion {label} is outside 0..6")
                if ip >= len(row):
                    raise DatasetError(f"{path}: row {rownum}: no pixels column")
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        px = np.fromstring(row[ip], dtype=np.int32, sep=" ")  # fast path; checked below
                except ValueError:
                    px = np.zeros(0, dtype=np.int32)
                if px.size != npix:
                    try:  # the slow path names the problem exactly
                        px = np.array(row[ip].split(), dtype=np.int32)
                    except ValueError:
                        raise DatasetError(f"{path}: row {rownum}: pixels are not space-separated integers") from None
                if px.size != npix:
                    raise DatasetError(f"{path}: row {rownum}: {px.size} pixels, expected {npix} (48x48)")
                if px.min() < 0 or px.max() > 255:
                    raise DatasetError(f"{path}: row {rownum}: pixel values outside 0..255")
                images.append(px.astype(np.uint8).reshape(INPUT_SIZE, INPUT_SIZE))
                labels.append(label)
                splits.append(split)
                ids.append(rownum)
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read as a FER2013 CSV: {exc}") from exc
    if not images:
        detail = f" with Usage in {sorted(want)}" if want else ""
        raise DatasetError(f"{path}: no rows{detail}: the dataset is empty")
    return FaceDataset(
        images=np.stack(images), labels=np.asarray(labels, dtype=np.int64),
        class_names=FER2013_CLASSES, splits=np.asarray(splits), ids=np.asarray(ids),
        source=str(path), meta={"format": "fer2013-csv"})
