"""Class balance in training: per-class loss weights, oversampling, and the class mix a model learns
from them (recorded in its manifest for the runtime's class prior, :mod:`emoedge.edge.inference.prior`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emoedge.core.errors import BadInputError

BALANCE_MODES = ("none", "weights", "sqrt-weights", "oversample")


def class_weights(labels: np.ndarray, k: int, mode: str) -> dict[int, float] | None:
    """Per-class loss weights for ``class_balance`` (inverse frequency, or its square root), or None."""
    if mode in ("none", "oversample"):
        return None
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    counts[counts == 0] = 1
    w = counts.sum() / (k * counts)
    if mode == "sqrt-weights":
        w = np.sqrt(w)
    elif mode != "weights":
        raise BadInputError(f"class_balance must be none, weights, sqrt-weights or oversample, got {mode!r}")
    w = w / (w * counts).sum() * counts.sum()  # keep the mean loss scale
    return {i: float(v) for i, v in enumerate(w)}


def oversample(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices with every class repeated up to the median class count."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    target = int(np.median(counts))
    out = []
    for c, n in zip(classes, counts):
        idx = np.flatnonzero(labels == c)
        if n < target:
            idx = np.concatenate([idx, rng.choice(idx, target - n, replace=True)])
        out.append(idx)
    return rng.permutation(np.concatenate(out))


def training_mix(labels: np.ndarray, class_names: Sequence[str], mode: str, seed: int = 0) -> dict:
    """What a model trained on ``labels`` with ``class_balance: mode`` learns as its class mix: the
    training counts (after oversampling), the per-class loss weights, and their normalised product."""
    from emoedge.edge.inference.prior import mix_record

    k = len(class_names)
    drawn = labels[oversample(labels, seed)] if mode == "oversample" else labels
    counts = np.bincount(drawn, minlength=k)
    weights = class_weights(labels, k, mode) or {}
    return mix_record({c: int(counts[i]) for i, c in enumerate(class_names)},
                      {c: weights.get(i, 1.0) for i, c in enumerate(class_names)}, mode,
                      f"the training split, {len(labels)} faces, class_balance {mode}")
