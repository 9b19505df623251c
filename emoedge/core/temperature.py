"""Temperature scaling on the device: ``p_T = softmax(log p / T)`` on class probabilities
(models here output softmax probabilities, so scaling works on their logarithms); T > 1 softens
an over-confident model, T < 1 sharpens it. numpy only. The one softmax-with-temperature of the
package: the classifier applies a fitted T (emoedge.edge.inference.classify), training softens a teacher's
probabilities with it (emoedge.train.targets.soften). Fitting T, reliability diagrams and
calibration error live in the evaluation layer (emoedge.evaluate.temperature).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def apply_temperature(probs: np.ndarray, temperature: float, eps: float = EPS) -> np.ndarray:
    """``softmax(log(clip(probs, eps, 1)) / temperature)`` along the last axis, as float32,
    computed in the dtype of ``probs``. ``temperature == 1`` returns ``probs`` itself."""
    if temperature == 1.0:
        return probs
    z = np.log(np.clip(probs, eps, 1.0)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
