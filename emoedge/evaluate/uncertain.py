"""The `uncertain` threshold of a model, chosen on validation from its calibrated probabilities.

The runtime labels a face `uncertain` when its (smoothed) top-class probability is below
``uncertain_below``. With probabilities calibrated by temperature scaling, a top-class probability
is how often that class is right; the threshold is set where the model's top class becomes more
often right than wrong on validation faces: the lowest confidence from which every band of
confidence (bins of width ``BIN``, each with at least ``MIN_PER_BIN`` faces) is right at least half
the time. Below it, claiming an emotion would more often be wrong than right. Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BIN = 0.05
MIN_PER_BIN = 20
RIGHT_AT_LEAST = 0.5


@dataclass(frozen=True)
class UncertainChoice:
    threshold: float           # uncertain_below
    n: int                     # validation faces
    share_uncertain: float     # of them below the threshold
    accuracy_above: float      # accuracy of the faces at or above it
    accuracy_below: float | None

    def to_dict(self) -> dict:
        return {"uncertain_below": self.threshold, "n": self.n, "share_uncertain": round(self.share_uncertain, 4),
                "accuracy_above": round(self.accuracy_above, 4),
                "accuracy_below": None if self.accuracy_below is None else round(self.accuracy_below, 4),
                "rule": f"the lowest calibrated top-class probability from which every {BIN:g}-wide band (with "
                        f">= {MIN_PER_BIN} validation faces) is right at least {RIGHT_AT_LEAST:.0%} of the time"}


def choose_uncertain_below(probs: np.ndarray, labels: np.ndarray) -> UncertainChoice:
    """The threshold for calibrated class probabilities ``probs`` (N, k) of faces labelled ``labels``."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    edges = np.round(np.arange(0.0, 1.0 + BIN / 2, BIN), 4)
    threshold = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (conf >= lo) & (conf < hi) if hi < 1.0 else conf >= lo
        if band.sum() >= MIN_PER_BIN and right[band].mean() < RIGHT_AT_LEAST:
            threshold = float(hi)   # this band is more often wrong: the threshold goes above it
    threshold = min(threshold, 1.0 - BIN)
    below = conf < threshold
    return UncertainChoice(threshold, int(len(labels)), float(below.mean()),
                           float(right[~below].mean()) if (~below).any() else 0.0,
                           float(right[below].mean()) if below.any() else None)
