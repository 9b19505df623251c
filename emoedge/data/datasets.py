"""Face datasets: the FER2013 CSV, FER+ votes, and folder trees, as one typed record.

Everything here needs numpy and OpenCV only (no TensorFlow), so evaluation of a TFLite model
can run on a device. Images are kept as uint8 48x48 grayscale; the preprocessing contract in
``emoedge.core.preprocess`` turns them into model input.

:func:`load_dataset` opens any of them from a path. Each format has its module: the record
(:mod:`~emoedge.data.faces`), the FER2013 CSV (:mod:`~emoedge.data.fer2013`), FER+
(:mod:`~emoedge.data.ferplus`), folder trees (:mod:`~emoedge.data.folders`); their public names are
importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from emoedge.data.faces import (
    NO_LABEL,
    SPLIT_ALIASES,
    DatasetError,
    FaceDataset,
    Skipped,
    canonical_split,
    select_classes,
)
from emoedge.data.fer2013 import FER2013_CLASSES, load_fer2013_csv
from emoedge.data.ferplus import (
    FERPLUS_CLASSES,
    FERPLUS_VAL_FRACTION,
    FERPLUS_VAL_SEED,
    FERPLUS_VOTE_COLUMNS,
    ferplus7,
    ferplus_label_counts,
    ferplus_majority,
    load_ferplus,
)
from emoedge.data.folders import load_folder, write_folder

__all__ = [
    "NO_LABEL", "SPLIT_ALIASES", "DatasetError", "FaceDataset", "Skipped", "canonical_split", "select_classes",
    "FER2013_CLASSES", "load_fer2013_csv",
    "FERPLUS_CLASSES", "FERPLUS_VAL_FRACTION", "FERPLUS_VAL_SEED", "FERPLUS_VOTE_COLUMNS", "ferplus7",
    "ferplus_label_counts", "ferplus_majority", "load_ferplus",
    "load_folder", "write_folder", "load_dataset",
]


def load_dataset(spec: str | os.PathLike, labels: str = "auto", votes: str | os.PathLike | None = None,
                 usage: Sequence[str] | None = None, classes: Sequence[str] | None = None) -> FaceDataset:
    """Open any supported dataset from a path.

    * ``*.csv`` / ``*.csv.gz`` -> FER2013 CSV; with ``labels="ferplus"`` the votes file (default:
      ``fer2013new.csv`` beside it) gives the 8 FER+ classes, with ``labels="ferplus7"`` FER2013's 7
      classes labelled by the crowd (:func:`ferplus7`);
    * a folder -> a folder tree.
    """
    p = Path(spec)
    if not p.exists():
        raise DatasetError(f"{p}: dataset not found (expected a FER2013 .csv/.csv.gz or a folder tree)")
    if p.is_dir():
        return load_folder(p, classes=classes)
    if p.name.endswith((".csv", ".csv.gz")):
        if labels in ("ferplus", "ferplus7"):
            votes = Path(votes) if votes else p.parent / "fer2013new.csv"
            ds = load_ferplus(p, votes, usage=usage)
            return ferplus7(ds) if labels == "ferplus7" else ds
        if labels not in ("auto", "fer2013"):
            raise DatasetError(f"{p}: unknown label set {labels!r}; use 'fer2013', 'ferplus' or 'ferplus7'")
        return load_fer2013_csv(p, usage=usage)
    raise DatasetError(f"{p}: unknown dataset format; expected a FER2013 .csv/.csv.gz or a folder tree")
