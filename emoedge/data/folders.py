"""Face datasets as folder trees of images: ``root/<split>/<class>/*`` or ``root/<class>/*``, read
(:func:`load_folder`, any image size, made 48x48 gray by the preprocessing contract) and written
(:func:`write_folder`). OpenCV is imported inside the functions."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emoedge.core.errors import BadInputError
from emoedge.core.preprocess import INPUT_SIZE, face_to_gray48
from emoedge.data.faces import SPLIT_ALIASES, DatasetError, FaceDataset, Skipped, canonical_split
from emoedge.edge.runtime.sources import IMAGE_SUFFIXES


def _read_image(path: Path) -> np.ndarray:
    import cv2

    from emoedge.core.images import read_image

    img = read_image(path, cv2.IMREAD_UNCHANGED)   # larger than the package's bound: a ValueError naming it
    if img is None:
        raise ValueError("not a readable image")
    return img


def _class_dirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_folder(root: str | os.PathLike, classes: Sequence[str] | None = None,
                resize: bool = True) -> FaceDataset:
    """A folder tree ``root/<split>/<class>/*.png|jpg`` or ``root/<class>/*``.

    The layout is recognized from the names: if the top-level folders are split names
    (train/val/test, Training/PublicTest, ...) each holds class folders; otherwise the top-level
    folders are the classes and the items get the split ``all``. Class names are sorted
    (or given by ``classes``, which also fixes their order). Images that cannot be read, or are
    not 48x48 when ``resize`` is False, are skipped and listed in ``skipped``.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: dataset folder not found")
    if not root.is_dir():
        raise DatasetError(f"{root}: expected a folder tree root/<split>/<class>/*.png or root/<class>/*.png")
    top = _class_dirs(root)
    if not top:
        raise DatasetError(f"{root}: no sub-folders; expected root/<split>/<class>/*.png or root/<class>/*.png")
    split_dirs = [d for d in top if d.name.lower() in SPLIT_ALIASES]
    if split_dirs and len(split_dirs) == len(top):
        layout = [(d.name, c) for d in split_dirs for c in _class_dirs(d)]
        if not layout:
            raise DatasetError(f"{root}: split folders {[d.name for d in split_dirs]} hold no class folders")
        loose = [p for d in split_dirs for p in _images_in(d)]
        if loose:
            raise DatasetError(f"{root}: images directly inside split folder {loose[0].parent}; "
                               f"expected root/<split>/<class>/*.png")
    elif split_dirs:
        raise DatasetError(f"{root}: mixes split folders {[d.name for d in split_dirs]} with others "
                           f"{[d.name for d in top if d not in split_dirs]}; expected either "
                           f"root/<split>/<class>/* or root/<class>/*")
    else:
        if any(_class_dirs(d) for d in top) and not any(_images_in(d) for d in top):
            raise DatasetError(f"{root}: unknown folder layout: {[d.name for d in top]} are neither split "
                               f"names ({sorted(set(SPLIT_ALIASES))}) nor class folders with images")
        layout = [("all", c) for c in top]
    found = sorted({c.name for _, c in layout})
    if classes is None:
        class_names = tuple(found)
    else:
        class_names = tuple(classes)
        unknown = sorted(set(found) - set(class_names))
        if unknown:
            raise DatasetError(f"{root}: class folders {unknown} are not in the class list {list(class_names)}")
    index = {c: i for i, c in enumerate(class_names)}
    images, labels, splits, ids, skipped = [], [], [], [], []
    for split, cdir in layout:
        for p in _images_in(cdir):
            try:
                img = _read_image(p)
                if not resize and img.shape[:2] != (INPUT_SIZE, INPUT_SIZE):
                    raise BadInputError(f"size {img.shape[1]}x{img.shape[0]}, expected 48x48")
                gray = face_to_gray48(img)
            except (ValueError, OSError) as exc:
                skipped.append(Skipped(str(p), str(exc)))
                continue
            images.append(gray)
            labels.append(index[cdir.name])
            splits.append(SPLIT_ALIASES.get(split.lower(), split))
            ids.append(str(p))
    if not images:
        raise DatasetError(f"{root}: no readable images under {len(layout)} class folders "
                           f"({len(skipped)} skipped): the dataset is empty")
    return FaceDataset(
        images=np.stack(images), labels=np.asarray(labels, dtype=np.int64), class_names=class_names,
        splits=np.asarray(splits), ids=np.asarray(ids), source=str(root), skipped=tuple(skipped),
        meta={"format": "folder"})


def write_folder(ds: FaceDataset, root: str | os.PathLike, per_class: dict[str, int] | None = None,
                 seed: int = 0) -> dict[str, dict[str, int]]:
    """Write ``ds`` as a folder tree ``root/<split>/<class>/<id>.png`` (splits in the project's
    spelling: train/val/test), the layout :func:`load_folder` reads. ``per_class`` caps the faces
    of each class in each split ({split: cap}, e.g. {"train": 600}; a split not named is written
    whole), drawn at random with ``seed``. Refuses a ``root`` that already holds files. Returns
    {split: {class: count}} as written."""
    import cv2

    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise DatasetError(f"{root}: not empty; give a new folder")
    rng = np.random.default_rng(seed)
    written: dict[str, dict[str, int]] = {}
    for split in sorted({canonical_split(str(s)) for s in ds.splits}):
        part = ds.split(split).labelled()
        cap = (per_class or {}).get(split)
        written[split] = {}
        for ci, cname in enumerate(ds.class_names):
            idx = np.flatnonzero(part.labels == ci)
            if cap is not None and len(idx) > cap:
                idx = np.sort(rng.choice(idx, cap, replace=False))
            if not len(idx):
                continue
            d = root / split / cname
            d.mkdir(parents=True, exist_ok=True)
            for i in idx:
                name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(str(part.ids[i])).stem) or str(i)
                if not cv2.imwrite(str(d / f"{name}.png"), part.images[i]):
                    raise DatasetError(f"{d / name}.png: could not be written")
            written[split][cname] = int(len(idx))
    return written
