"""Face datasets: the FER2013 CSV, FER+ votes, and folder trees, as one typed record.

Everything here needs numpy and OpenCV only (no TensorFlow), so evaluation of a TFLite model
can run on a device. Images are kept as uint8 48x48 grayscale; the preprocessing contract in
``emoedge.core.preprocess`` turns them into model input.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from emoedge.core.errors import BadInputError
from emoedge.core.preprocess import INPUT_SIZE, face_to_gray48
from emoedge.edge.runtime.sources import IMAGE_SUFFIXES

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Column order of the FER+ votes file (fer2013new.csv), after "Usage" and "Image name".
FERPLUS_VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                        "contempt", "unknown", "NF")
# The 8 FER+ emotions in the Microe paper's (alphabetical) order, named like FER2013's classes.
FERPLUS_CLASSES = ("angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
_FERPLUS_VOTE_TO_CLASS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise",
                          "sadness": "sad", "anger": "angry", "disgust": "disgust", "fear": "fear",
                          "contempt": "contempt"}

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


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _require_file(path: Path, what: str) -> Path:
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
    path = _require_file(Path(path), "FER2013 CSV")
    want = None if usage is None else {u.lower() for u in usage}
    images, labels, splits, ids = [], [], [], []
    try:
        with _open_text(path) as fh:
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
    votes_path = _require_file(Path(votes_csv), "FER+ votes CSV")
    try:
        with _open_text(votes_path) as fh:
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


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Deterministic stratified split of indices by label into parts of the given fractions."""
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.min() < 0 or abs(fr.sum() - 1) > 1e-6:
        raise BadInputError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        idx = idx[rng.permutation(len(idx))]
        cuts = np.round(np.cumsum(fr)[:-1] * len(idx)).astype(int)
        for k, chunk in enumerate(np.split(idx, cuts)):
            parts[k].append(chunk)
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts]



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


def _read_image(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
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
