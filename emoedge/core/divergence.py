"""The one drift measure: Jensen-Shannon divergence of two label distributions, used by the
device's drift monitor and by the fleet page (numpy only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def js_divergence(p: Sequence[float] | Mapping[str, float], q: Sequence[float] | Mapping[str, float]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two distributions: arrays of the same
    length, or mappings label -> share lined up over the labels of either (0 where absent; two
    empty mappings: 0)."""
    if isinstance(p, Mapping) or isinstance(q, Mapping):
        keys = sorted(set(p) | set(q))
        if not keys:
            return 0.0
        p, q = [p.get(k, 0.0) for k in keys], [q.get(k, 0.0) for k in keys]
    a = np.asarray(p, dtype=np.float64) + 1e-12
    b = np.asarray(q, dtype=np.float64) + 1e-12
    a /= a.sum()
    b /= b.sum()
    m = (a + b) / 2
    return float(0.5 * (a * np.log2(a / m)).sum() + 0.5 * (b * np.log2(b / m)).sum())
