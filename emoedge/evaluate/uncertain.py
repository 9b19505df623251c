"""The `uncertain` threshold of a model, chosen on validation from its calibrated probabilities.

The runtime labels a face `uncertain` when its (smoothed) top-class probability is below
``uncertain_below``. The threshold is where the model's top class becomes more often right than wrong
on validation faces: how often the top class is right is fitted as a non-decreasing function of its
probability (isotonic regression, pool-adjacent-violators: no band of a few faces moves it), and the
threshold is the lowest probability at which that fit reaches one half. Below it, claiming an emotion
would more often be wrong than right. Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGHT_AT_LEAST = 0.5


def isotonic(y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The non-decreasing weighted least-squares fit of ``y`` (in its order): pool adjacent violators."""
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    means, sizes, counts = [], [], []
    for v, wi in zip(np.asarray(y, dtype=np.float64), w):
        means.append(v)
        sizes.append(wi)
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m2, s2, c2 = means.pop(), sizes.pop(), counts.pop()
            means[-1] = (means[-1] * sizes[-1] + m2 * s2) / (sizes[-1] + s2)
            sizes[-1] += s2
            counts[-1] += c2
    return np.repeat(means, counts)


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
                "rule": f"the lowest calibrated top-class probability at which the isotonic fit of how often the "
                        f"top class is right (validation) reaches {RIGHT_AT_LEAST:.0%}"}


def choose_uncertain_below(probs: np.ndarray, labels: np.ndarray) -> UncertainChoice:
    """The threshold for calibrated class probabilities ``probs`` (N, k) of faces labelled ``labels``."""
    conf = np.round(probs.max(axis=1), 4)         # faces of one confidence are one point of the fit
    right = probs.argmax(axis=1) == labels
    levels, inverse, sizes = np.unique(conf, return_inverse=True, return_counts=True)
    rate = np.bincount(inverse, weights=right.astype(np.float64)) / sizes
    fitted = isotonic(rate, sizes)
    reach = np.flatnonzero(fitted >= RIGHT_AT_LEAST)
    threshold = 0.0 if not len(reach) or reach[0] == 0 else float(np.round(levels[reach[0]], 2))
    below = conf < threshold
    return UncertainChoice(threshold, int(len(labels)), float(below.mean()),
                           float(right[~below].mean()) if (~below).any() else 0.0,
                           float(right[below].mean()) if below.any() else None)


# The deployment prior a model ships with (its manifest's ``class_prior``, used by ``runtime.class_prior:
# model``): the strength of the move toward ``balanced`` that gives the best mean recall per class on
# validation while accuracy stays within ACCURACY_GIVE of the trained mix's; ties go to the stronger
# accuracy. Strengths 0..1 in steps of PRIOR_STEP.
PRIOR_STEP = 0.05
ACCURACY_GIVE = 0.005


def choose_prior_strength(calibrated: np.ndarray, labels: np.ndarray, trained_shares: np.ndarray) -> dict:
    """The ``class_prior`` entry of a manifest, chosen on validation (calibrated probabilities)."""
    k = calibrated.shape[1]
    logp = np.log(np.clip(calibrated, 1e-12, None))
    rows = []
    for s in np.round(np.arange(0.0, 1.0 + PRIOR_STEP / 2, PRIOR_STEP), 2):
        pred = (logp - s * np.log(trained_shares * k)).argmax(axis=1)
        recalls = [float((pred[labels == c] == c).mean()) for c in range(k) if (labels == c).any()]
        rows.append((float(s), float((pred == labels).mean()), float(np.mean(recalls))))
    floor = rows[0][1] - ACCURACY_GIVE
    s, acc, bal = max((r for r in rows if r[1] >= floor), key=lambda r: (round(r[2], 4), r[1]))
    return {"prior": "balanced", "strength": s, "val_accuracy": round(acc, 4), "val_balanced_accuracy": round(bal, 4),
            "trained_val_accuracy": round(rows[0][1], 4), "trained_val_balanced_accuracy": round(rows[0][2], 4),
            "n": int(len(labels)),
            "rule": f"the strength toward balanced (0..1, steps of {PRIOR_STEP:g}) with the best mean recall per class "
                    f"on validation while accuracy stays within {ACCURACY_GIVE:.1%} of the trained mix's"}
