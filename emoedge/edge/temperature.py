"""Temperature scaling (Guo et al., 2017) on class probabilities, expected calibration error and
reliability diagrams. numpy only: fitting happens offline, applying happens on the device.

Models here output softmax probabilities, so scaling works on their logarithms:
``p_T = softmax(log p / T)``; T > 1 softens an over-confident model, T < 1 sharpens it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-7


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    if temperature == 1.0:
        return probs
    z = np.log(np.clip(probs, EPS, 1.0)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], EPS, 1.0)).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T minimizing validation NLL (golden-section search on log T; NLL is unimodal in T)."""
    labels = np.asarray(labels, dtype=np.int64)
    f = lambda lt: nll(apply_temperature(probs, float(np.exp(lt))), labels)  # noqa: E731
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return float(np.exp((a + b) / 2))


@dataclass(frozen=True)
class Reliability:
    bins: tuple[float, ...]          # bin upper edges
    confidence: tuple[float, ...]    # mean confidence per bin (nan where empty)
    accuracy: tuple[float, ...]      # accuracy per bin
    counts: tuple[int, ...]
    ece: float                       # expected calibration error


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> Reliability:
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    cb, ab, nb = [], [], []
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        n = int(m.sum())
        nb.append(n)
        if n:
            c, a = float(conf[m].mean()), float(correct[m].mean())
            ece += n / len(conf) * abs(c - a)
        else:
            c = a = float("nan")
        cb.append(c)
        ab.append(a)
    return Reliability(tuple(edges[1:].tolist()), tuple(cb), tuple(ab), tuple(nb), float(ece))


def plot_reliability(before: Reliability, after: Reliability | None, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for r, name in ((before, "before"), (after, "after")):
        if r is None:
            continue
        c = np.asarray(r.confidence)
        a = np.asarray(r.accuracy)
        ok = ~np.isnan(c)
        ax.plot(c[ok], a[ok], "o-", label=f"{name} (ECE {r.ece:.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title or "reliability diagram")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
