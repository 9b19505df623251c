"""FER+ (fer2013new.csv): the crowd's votes on the FER2013 faces, row-aligned with the FER2013 CSV.
Its 8 classes by the majority rule with the vote distributions as soft labels (:func:`load_ferplus`),
or FER2013's 7 classes labelled by the crowd with a named validation split (:func:`ferplus7`)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from emoedge.data.faces import NO_LABEL, DatasetError, FaceDataset, canonical_split
from emoedge.data.fer2013 import FER2013_CLASSES, load_fer2013_csv, open_text, require_file
from emoedge.data.splits import stratified_split

# Column order of the FER+ votes file (fer2013new.csv), after "Usage" and "Image name".
FERPLUS_VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                        "contempt", "unknown", "NF")
# The 8 FER+ emotions in the Microe paper's (alphabetical) order, named like FER2013's classes.
FERPLUS_CLASSES = ("angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
_FERPLUS_VOTE_TO_CLASS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise",
                          "sadness": "sad", "anger": "angry", "disgust": "disgust", "fear": "fear",
                          "contempt": "contempt"}


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """The FERPlus majority rule on vote rows in ``FERPLUS_VOTE_COLUMNS`` order.

    Single votes are dropped (a count of 1 becomes 0); the top emotion is kept only if it holds
    more than half of the remaining votes and is not ``unknown`` or ``NF``. Returns the index
    into ``FERPLUS_VOTE_COLUMNS`` or -1 where there is no majority.
    """
    v = np.where(votes <= 1, 0, votes).astype(np.float64)
    total = v.sum(axis=1)
    top = v.argmax(axis=1)
    top_votes = v[np.arange(len(v)), top]
    ok = (total > 0) & (top_votes > total / 2) & (top < 8)
    # a tie for the top leaves no majority either (cannot exceed half with a tie, but be explicit)
    return np.where(ok, top, -1)


def load_ferplus(fer_csv: str | os.PathLike, votes_csv: str | os.PathLike,
                 usage: Sequence[str] | None = None, drop_no_majority: bool = True) -> FaceDataset:
    """FER2013 pixels with FER+ 8-class majority labels and vote distributions as soft labels.

    The votes file must be row-aligned with the CSV (same row count, same Usage on each row).
    Rows without an image name (not faces) are dropped; so are rows without a majority unless
    ``drop_no_majority`` is False (they then carry label -1).
    """
    base = load_fer2013_csv(fer_csv)
    votes_path = require_file(Path(votes_csv), "FER+ votes CSV")
    try:
        with open_text(votes_path) as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{votes_path}: cannot read the FER+ votes: {exc}") from exc
    if not rows:
        raise DatasetError(f"{votes_path}: empty file")
    header, body = rows[0], [r for r in rows[1:] if r]
    if len(body) != len(base):
        raise DatasetError(f"{votes_path}: {len(body)} rows, but {base.source} has {len(base)}: "
                           f"the FER+ votes must be row-aligned with the FER2013 CSV")
    if len(header) < 2 + len(FERPLUS_VOTE_COLUMNS):
        raise DatasetError(f"{votes_path}: header {header} lacks the 10 vote columns")
    names = np.empty(len(body), dtype=object)
    votes = np.zeros((len(body), len(FERPLUS_VOTE_COLUMNS)), dtype=np.int64)
    for i, r in enumerate(body):
        if r[0].strip() != str(base.splits[i]).strip():
            raise DatasetError(f"{votes_path}: row {i + 1}: Usage {r[0]!r} but {base.source} row "
                               f"{base.ids[i]} says {base.splits[i]!r}: the files are not row-aligned")
        names[i] = r[1].strip()
        try:
            votes[i] = [int(float(x)) for x in r[2:2 + len(FERPLUS_VOTE_COLUMNS)]]
        except ValueError:
            raise DatasetError(f"{votes_path}: row {i + 1}: vote counts are not numbers") from None
    majority = ferplus_majority(votes)
    cls_index = {c: i for i, c in enumerate(FERPLUS_CLASSES)}
    vote_to_cls = np.array([cls_index[_FERPLUS_VOTE_TO_CLASS[c]] for c in FERPLUS_VOTE_COLUMNS[:8]])
    labels = np.where(majority >= 0, vote_to_cls[np.clip(majority, 0, 7)], NO_LABEL)
    soft = np.zeros((len(body), len(FERPLUS_CLASSES)), dtype=np.float32)
    soft[:, vote_to_cls] = votes[:, :8]
    with np.errstate(invalid="ignore", divide="ignore"):
        soft = np.nan_to_num(soft / soft.sum(axis=1, keepdims=True))
    is_face = np.array([bool(n) for n in names])
    in_usage = np.ones(len(body), dtype=bool)
    if usage is not None:
        want = {u.lower() for u in usage}
        in_usage = np.array([str(s).lower() in want for s in base.splits])
    keep = is_face & in_usage
    if drop_no_majority:
        keep &= labels != NO_LABEL
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise DatasetError(f"{votes_path}: no rows left after dropping non-faces and rows without a majority")
    return FaceDataset(
        images=base.images[idx], labels=labels[idx], class_names=FERPLUS_CLASSES,
        splits=base.splits[idx], ids=base.ids[idx], source=f"{base.source}+{votes_path}",
        soft_labels=soft[idx],
        meta={"format": "ferplus", "non_faces": int((~is_face & in_usage).sum()),
              "no_majority": int((is_face & in_usage & (labels == NO_LABEL)).sum())})


FERPLUS_VAL_SEED = 1          # the 8-class validation carve that ferplus7 names (ferplus8's)
FERPLUS_VAL_FRACTION = 0.1


def _name_ferplus_val(ds: FaceDataset) -> FaceDataset:
    """``ds`` (FER+ 8 classes) with the faces of the stratified 10% carve of its Training split
    (seed :data:`FERPLUS_VAL_SEED`) renamed to the split ``val``."""
    train = np.flatnonzero(np.array([canonical_split(str(s)) == "train" for s in ds.splits]))
    if train.size == 0:
        return ds
    _, val = stratified_split(ds.labels[train], [1 - FERPLUS_VAL_FRACTION, FERPLUS_VAL_FRACTION], FERPLUS_VAL_SEED)
    splits = np.array(ds.splits, dtype=object)
    splits[train[val]] = "val"
    return replace(ds, splits=splits.astype(str))


def ferplus7(ds: FaceDataset) -> FaceDataset:
    """FER+ on FER2013's 7 classes (in FER2013's order): faces whose majority is ``contempt`` are left
    out (as in FER+ 7-class results), and every face's vote distribution drops its contempt votes and
    is renormalised over the 7 emotions (a face whose only emotion votes were contempt has none left
    and keeps its one-hot label). ``unknown`` and not-a-face (NF) votes never enter a distribution;
    faces without a majority or whose majority is unknown/NF are already left out by :func:`load_ferplus`.

    Its validation split is named, not drawn: the faces of FER+ ``Training`` that the 8-class carve
    (stratified 10%, seed :data:`FERPLUS_VAL_SEED`, as ``ferplus8`` was trained) holds out, contempt
    left out; so a model started from ``ferplus8`` is validated on faces it never saw."""
    if tuple(ds.class_names) != FERPLUS_CLASSES:
        raise DatasetError(f"{ds.source}: ferplus7 needs the FER+ 8 classes, got {list(ds.class_names)}")
    ds = _name_ferplus_val(ds)
    order = np.array([FERPLUS_CLASSES.index(c) for c in FER2013_CLASSES])
    remap = np.full(len(FERPLUS_CLASSES) + 1, NO_LABEL)
    remap[order] = np.arange(len(order))
    labels = remap[ds.labels]
    idx = np.flatnonzero(labels != NO_LABEL)
    soft = None
    if ds.soft_labels is not None:
        soft = np.asarray(ds.soft_labels, dtype=np.float32)[idx][:, order]
        total = soft.sum(axis=1, keepdims=True)
        onehot = np.eye(len(order), dtype=np.float32)[labels[idx]]
        soft = np.where(total > 0, soft / np.where(total > 0, total, 1), onehot).astype(np.float32)
    contempt = int((ds.labels == FERPLUS_CLASSES.index("contempt")).sum())
    meta = dict(ds.meta, format="ferplus7", contempt_majority=contempt)
    return FaceDataset(images=ds.images[idx], labels=labels[idx], class_names=FER2013_CLASSES,
                       splits=ds.splits[idx], ids=ds.ids[idx], source=ds.source, soft_labels=soft,
                       skipped=ds.skipped, meta=meta)


def ferplus_label_counts(fer_csv, votes_csv, usage: str = "Training") -> dict[str, int]:
    """Majority-label counts of one split, plus ``no_majority`` and ``no_image`` (not a face) rows."""
    ds = load_ferplus(fer_csv, votes_csv, usage=[usage], drop_no_majority=False)
    out = {c: int((ds.labels == i).sum()) for i, c in enumerate(ds.class_names)}
    out["no_majority"] = int(ds.meta["no_majority"])
    out["no_image"] = int(ds.meta["non_faces"])
    return out
