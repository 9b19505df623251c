"""Class probabilities of a Keras model, in float32: what training, distillation and fusion score with."""

from __future__ import annotations

import numpy as np


def predict_probs(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
