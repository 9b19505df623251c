"""Classification metrics in numpy only (usable on a device, no TensorFlow or scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Evaluation:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix
    (rows = true class, columns = predicted class)."""
    n: int
    accuracy: float
    macro_f1: float
    per_class: tuple[ClassMetrics, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]
    class_names: tuple[str, ...]
    extra: dict | None = None

    @property
    def balanced_accuracy(self) -> float:
        """Mean per-class recall over the classes present (support > 0): every class counts alike,
        however rare; a model that calls every calm face calm and nothing else scores 1/k of it."""
        recalls = [c.recall for c in self.per_class if c.support > 0]
        return float(np.mean(recalls)) if recalls else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["balanced_accuracy"] = self.balanced_accuracy
        d["per_class"] = {c.name: {"precision": c.precision, "recall": c.recall, "f1": c.f1,
                                   "support": c.support} for c in self.per_class}
        d["confusion_matrix"] = [list(r) for r in self.confusion_matrix]
        d["class_names"] = list(self.class_names)
        if not self.extra:
            d.pop("extra")
        return d

    def table(self) -> str:
        """A readable per-class table."""
        w = max(8, max(len(c) for c in self.class_names))
        lines = [f"{'class':<{w}}  precision  recall     f1  support"]
        for c in self.per_class:
            lines.append(f"{c.name:<{w}}  {c.precision:9.3f}  {c.recall:6.3f}  {c.f1:5.3f}  {c.support:7d}")
        lines.append(f"{'accuracy':<{w}}  {self.accuracy:9.4f}  (n={self.n})")
        lines.append(f"{'balanced':<{w}}  {self.balanced_accuracy:9.4f}  (mean recall)")
        lines.append(f"{'macro-F1':<{w}}  {self.macro_f1:9.4f}")
        return "\n".join(lines)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def evaluate_predictions(y_true: Sequence[int], probs_or_pred: np.ndarray,
                         class_names: Sequence[str], extra: dict | None = None) -> Evaluation:
    """Metrics from true labels and either class probabilities (N, C) or predicted labels (N,)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probs_or_pred)
    k = len(class_names)
    if p.ndim == 2:
        if p.shape[1] != k:
            raise ValueError(f"model gives {p.shape[1]} outputs but there are {k} classes {list(class_names)}")
        y_pred = p.argmax(axis=1)
    else:
        y_pred = p.astype(np.int64)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("cannot evaluate on an empty set")
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    per_class = tuple(ClassMetrics(str(c), float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
                      for i, c in enumerate(class_names))
    return Evaluation(
        n=int(len(y_true)), accuracy=float(tp.sum() / len(y_true)),
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class=per_class, confusion_matrix=tuple(tuple(int(v) for v in r) for r in cm),
        class_names=tuple(str(c) for c in class_names), extra=extra)
