"""Splits: the deterministic stratified split, a dataset's train/val/test, and the ONE home of
the validation split seed that evaluation, calibration and training share."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from emoedge.core.errors import BadInputError
from emoedge.data.faces import FaceDataset, canonical_split

# The seed of the train/validation split of a training run that records none: the trainer's default
# seed (``TrainConfig.seed``; its ``split_seed`` follows ``seed`` unless set). Evaluation on "val",
# calibration sampling and a run's splits all carve the same validation faces with it.
SPLIT_SEED = 1


def split_seed_of(run: str | os.PathLike | Mapping) -> int:
    """The train/validation split seed of a training run: its ``split_seed``, else its ``seed``, else
    :data:`SPLIT_SEED`. ``run`` is a ``run.json`` path, a run record (with ``config``) or a config."""
    if isinstance(run, (str, os.PathLike)):
        import json

        run = json.loads(Path(run).read_text())
    cfg = run.get("config", run)
    seed = cfg.get("split_seed")
    if seed is None:
        seed = cfg.get("seed")
    return SPLIT_SEED if seed is None else int(seed)


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


def standard_splits(ds: FaceDataset, val_fraction: float = 0.15, test_fraction: float = 0.15,
                    seed: int = 0) -> dict[str, FaceDataset]:
    """train/val/test: the source's own splits where it has them, else a stratified split.

    * train + test present (FER2013 Training/PublicTest): val is carved from train;
    * train + val + test: used as they are;
    * no split (``all``): 70/15/15 by default.
    """
    ds = ds.labelled()
    names = {canonical_split(str(s)) for s in ds.splits}
    if "train" in names:
        train = ds.split("train")
        test = ds.split("test") if "test" in names else None
        if "val" in names:
            val = ds.split("val")
        else:
            tr_idx, va_idx = stratified_split(train.labels, [1 - val_fraction, val_fraction], seed)
            train, val = train.subset(tr_idx), train.subset(va_idx)
        if test is None:
            tr_idx, te_idx = stratified_split(train.labels, [1 - test_fraction, test_fraction], seed + 1)
            train, test = train.subset(tr_idx), train.subset(te_idx)
        return {"train": train, "val": val, "test": test}
    parts = stratified_split(ds.labels, [1 - val_fraction - test_fraction, val_fraction, test_fraction], seed)
    return {k: ds.subset(p) for k, p in zip(("train", "val", "test"), parts)}
