"""Fit temperature scaling on the validation split, record it in the model's manifests, and
report expected calibration error before and after with a reliability diagram.

Temperature scaling (Guo et al., 2017): the T minimizing validation NLL (:func:`fit_temperature`),
expected calibration error and reliability diagrams (:func:`reliability`, :func:`plot_reliability`).
Applying T is the device's job: :func:`emoedge.core.temperature.apply_temperature`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.core.fileio import atomic_write_text
from emoedge.core.shipped import manifest_path
from emoedge.core.temperature import EPS, apply_temperature
from emoedge.data.datasets import FaceDataset
from emoedge.evaluate.scoring import evaluate_model


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


def _fit_without_harm(probs: np.ndarray, labels: np.ndarray) -> tuple[float, Reliability, Reliability, str]:
    """The NLL-fitted T, or 1.0 when that T makes ECE worse (NLL and ECE can disagree), with the
    reliability before and after it and a note saying which."""
    t = fit_temperature(probs, labels)
    before = reliability(probs, labels)
    after = reliability(apply_temperature(probs, t), labels)
    if after.ece <= before.ece:
        return t, before, after, f"T = {t:.3f} fitted by validation NLL"
    return 1.0, before, before, (f"T kept at 1.0: the NLL-fitted T = {t:.3f} made ECE worse "
                                 f"({before.ece:.4f} -> {after.ece:.4f})")


def calibrate(model_path: str | Path, dataset: FaceDataset, usage: str = "val", out_dir: str | Path | None = None,
              write_to: Sequence[str | Path] = ()) -> dict:
    """Fit T on ``usage`` (default: the validation split carved from training), write
    ``temperature`` into the manifests of ``model_path`` and every file in ``write_to``. A fitted T
    that makes the calibration error worse is not written: T stays 1.0, and ``note`` says so."""
    run = evaluate_model(model_path, dataset, usage=usage)
    t, before, after, note = _fit_without_harm(run.probs, run.labels)
    result = {"model": Path(model_path).name, "split": usage, "n": int(len(run.labels)), "temperature": t,
              "ece_before": before.ece, "ece_after": after.ece, "note": note}
    for target in [model_path, *write_to]:
        mp = manifest_path(target)
        if mp.is_file():
            m = json.loads(mp.read_text())
            m["temperature"] = t
            m["calibration_of_probabilities"] = {k: result[k] for k in ("split", "n", "ece_before", "ece_after",
                                                                        "note")}
            atomic_write_text(mp, json.dumps(m, indent=2) + "\n")
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "calibration.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_reliability(before, after, out / "reliability.png",
                         f"{Path(model_path).name}: T = {t:.2f} on {usage} (n={len(run.labels)})")
    return result
