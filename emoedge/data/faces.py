"""The one typed record of a face dataset (:class:`FaceDataset`): uint8 48x48 faces, labels, each
item's split and id; the split names datasets use (:func:`canonical_split`), what was skipped, the
error for bad dataset input, and classes kept, renamed or merged (:func:`select_classes`).
numpy only (no TensorFlow, no OpenCV)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from emoedge.core.errors import BadInputError

# Split names as datasets spell them -> the three names this project uses.
SPLIT_ALIASES = {
    "training": "train", "train": "train",
    "publictest": "test", "test": "test", "privatetest": "test2", "testing": "test",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
}
NO_LABEL = -1


def canonical_split(name: str) -> str:
    """train/val/test/test2 for known split names, else the name itself."""
    return SPLIT_ALIASES.get(name.lower(), name)


class DatasetError(BadInputError):
    """Bad dataset input. The message names the file (and row) and what was expected."""


@dataclass(frozen=True)
class Skipped:
    """An item left out of a dataset, and why (corrupt image, wrong size, ...)."""
    where: str
    reason: str


@dataclass(frozen=True, eq=False)
class FaceDataset:
    """Faces as uint8 ``(N, 48, 48)`` with integer labels into ``class_names``.

    ``splits`` holds each item's split as the source names it, mapped to train/val/test where
    the name is known. ``ids`` names each item (a CSV row number or a file path). ``soft_labels``
    (N, C) holds vote distributions where the source has them (FER+). ``skipped`` lists what
    could not be read, with the reason.
    """
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    splits: np.ndarray
    ids: np.ndarray
    source: str
    soft_labels: np.ndarray | None = None
    skipped: tuple[Skipped, ...] = ()
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.images)
        for name in ("labels", "splits", "ids"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} items, images has {n}")
        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            raise ValueError(f"images must be uint8 (N,H,W), got {self.images.dtype} {self.images.shape}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, mask_or_index, source: str | None = None) -> FaceDataset:
        idx = np.asarray(mask_or_index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return FaceDataset(
            images=self.images[idx], labels=self.labels[idx], class_names=self.class_names,
            splits=self.splits[idx], ids=self.ids[idx], source=source or self.source,
            soft_labels=None if self.soft_labels is None else self.soft_labels[idx],
            skipped=self.skipped, meta=self.meta)

    def split(self, name: str) -> FaceDataset:
        """Items whose split is ``name`` (source or project spelling)."""
        want = canonical_split(name)
        mask = np.array([canonical_split(str(s)) == want for s in self.splits], dtype=bool)
        return self.subset(mask)

    def labelled(self) -> FaceDataset:
        return self.subset(self.labels != NO_LABEL)

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: count}} (``"(no label)"`` for items without one)."""
        out: dict[str, dict[str, int]] = {}
        for s in sorted(set(self.splits.tolist())):
            lab = self.labels[self.splits == s]
            row = {c: int((lab == i).sum()) for i, c in enumerate(self.class_names)}
            if (lab == NO_LABEL).any():
                row["(no label)"] = int((lab == NO_LABEL).sum())
            out[s] = row
        return out

    def fingerprint(self) -> str:
        """sha256 over pixels, labels and class names: what a model was trained on."""
        h = hashlib.sha256()
        h.update(",".join(self.class_names).encode())
        h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(self.images).tobytes())
        return h.hexdigest()


def select_classes(ds: FaceDataset, keep: Iterable[str] | None = None,
                   rename: Mapping[str, str] | None = None) -> FaceDataset:
    """Keep a subset of classes (in the given order) and/or rename them; several old classes
    renamed to one new name are merged."""
    rename = dict(rename or {})
    unknown = sorted(set(rename) - set(ds.class_names))
    if unknown:
        raise DatasetError(f"{ds.source}: cannot rename {unknown}: classes are {list(ds.class_names)}")
    names = [rename.get(c, c) for c in ds.class_names]
    new_names: list[str] = []
    for n in names:
        if n not in new_names:
            new_names.append(n)
    if keep is not None:
        keep = list(keep)
        missing = sorted(set(keep) - set(new_names))
        if missing:
            raise DatasetError(f"{ds.source}: classes {missing} are not in {new_names}")
        new_names = keep
    new_index = {c: i for i, c in enumerate(new_names)}
    mapping = np.array([new_index.get(n, NO_LABEL) for n in names] + [NO_LABEL])
    labels = mapping[ds.labels]  # label -1 indexes the trailing NO_LABEL
    keep_mask = labels != NO_LABEL
    if not keep_mask.any():
        raise DatasetError(f"{ds.source}: no items left after selecting classes {new_names}")
    idx = np.flatnonzero(keep_mask)
    return FaceDataset(images=ds.images[idx], labels=labels[idx], class_names=tuple(new_names),
                       splits=ds.splits[idx], ids=ds.ids[idx], source=ds.source,
                       soft_labels=None, skipped=ds.skipped, meta=ds.meta)
