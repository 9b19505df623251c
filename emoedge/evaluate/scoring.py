"""Evaluate a classifier (Keras or TFLite of any dtype) on a labelled dataset split."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.core.errors import BadInputError, ModelError
from emoedge.core.preprocess import normalize
from emoedge.core.shipped import read_manifest
from emoedge.core.temperature import apply_temperature
from emoedge.data.datasets import FaceDataset, canonical_split
from emoedge.data.splits import SPLIT_SEED, standard_splits
from emoedge.edge.engines.interpreter import check_classes
from emoedge.edge.inference.classify import open_model
from emoedge.edge.inference.prior import apply_prior, prior_shift
from emoedge.metrics import Evaluation, evaluate_predictions


class KerasClassifier:
    """A Keras model behind the same ``predict`` (imports TensorFlow: not for the device)."""

    def __init__(self, model_path: str | Path):
        self.path = Path(model_path)
        from emoedge.keras.io import load_keras

        self.model = load_keras(self.path)
        shape = self.model.input_shape
        if isinstance(shape, list) or len(shape) != 4:
            raise ModelError(f"{self.path}: expected one NHWC image input, got {shape}")
        self.input_size = shape[1]
        self.num_classes = self.model.output_shape[-1]

    def predict(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = np.asarray(faces, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        return np.asarray(self.model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def load_classifier(model_path: str | Path, delegate: str = "cpu", num_threads: int | None = None):
    """A classifier for any format of the table: TFLite of any dtype, ONNX, or Keras."""
    path = Path(model_path)
    if path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return KerasClassifier(path)
    return open_model(path, delegate, num_threads)


def model_class_names(model_path: str | Path) -> tuple[str, ...] | None:
    """Class names from the manifest beside a model, else from the training record (``run.json``)
    beside a trained ``model.keras``; None if neither has them."""
    manifest = read_manifest(model_path)
    if manifest and manifest.get("class_names"):
        return tuple(manifest["class_names"])
    record = Path(model_path).parent / "run.json"
    if Path(model_path).suffix == ".keras" and record.is_file():
        names = json.loads(record.read_text()).get("class_names")
        return tuple(names) if names else None
    return None


def select_split(ds: FaceDataset, usage: str | None, seed: int = SPLIT_SEED, val_fraction: float = 0.1) -> FaceDataset:
    """The items of one split: a source split name (e.g. PublicTest) or train/val/test of
    :func:`standard_splits`; ``None`` or ``all`` keeps every labelled item."""
    ds = ds.labelled()
    if usage is None or usage == "all":
        return ds
    names = {canonical_split(str(s)) for s in ds.splits}
    want = canonical_split(usage)
    if want == "val" and "val" not in names:
        return standard_splits(ds, val_fraction=val_fraction, seed=seed)["val"]
    sub = ds.split(usage)
    if len(sub) == 0:
        raise BadInputError(f"{ds.source}: no labelled items in split {usage!r}; splits are {sorted(set(ds.splits))}")
    return sub


@dataclass(frozen=True)
class EvaluationRun:
    model: str
    data: str
    split: str
    evaluation: Evaluation
    probs: np.ndarray
    labels: np.ndarray


def evaluate_model(model_path: str | Path, dataset: FaceDataset, usage: str | None = None,
                   class_names: Sequence[str] | None = None, num_threads: int | None = None,
                   class_prior: str = "trained", prior_strength: float = 1.0) -> EvaluationRun:
    """Score a model on one split of ``dataset``.

    The model's classes come from ``class_names``, else its manifest, else the dataset. The
    model must output as many classes as there are names, and the dataset's classes must be
    among them. A ``class_prior`` other than ``trained`` scores the probabilities as the runtime
    computes them under it: the manifest's temperature, then the prior's shift (:mod:`emoedge.edge.inference.prior`).
    """
    clf = load_classifier(model_path, num_threads=num_threads)
    names = tuple(class_names or model_class_names(model_path) or getattr(clf, "class_names", None)
                  or dataset.class_names)
    check_classes(clf, names)
    sub = select_split(dataset, usage)
    if tuple(sub.class_names) != names:
        missing = sorted(set(sub.class_names) - set(names))
        if missing:
            raise ModelError(f"{model_path}: the data has classes {missing} the model does not know ({list(names)})")
        remap = np.array([names.index(c) for c in sub.class_names])
        labels = remap[sub.labels]
    else:
        labels = sub.labels
    if getattr(clf, "input_size", 48) != sub.images.shape[1]:
        raise ModelError(f"{model_path}: model input is {clf.input_size}x{clf.input_size}, data is "
                         f"{sub.images.shape[1]}x{sub.images.shape[2]}")
    probs = clf.predict(normalize(sub.images))
    if class_prior != "trained":
        manifest = read_manifest(model_path) or {}
        shift = prior_shift(class_prior, manifest, names, prior_strength, str(model_path))
        probs = apply_prior(apply_temperature(probs, float(manifest.get("temperature", 1.0))), shift)
    ev = evaluate_predictions(labels, probs, names)
    return EvaluationRun(str(model_path), dataset.source, usage or "all", ev, probs, labels)


def plot_confusion(ev: Evaluation, path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(ev.confusion_matrix, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(ev.class_names)
    fig, ax = plt.subplots(figsize=(1.0 * k + 2, 1.0 * k + 1.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), ev.class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), ev.class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {ev.accuracy:.1%}, macro-F1 {ev.macro_f1:.3f} (n={ev.n})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_evaluation(run: EvaluationRun, json_path: str | Path, plot: bool = True) -> dict:
    """Write the evaluation JSON (and the confusion matrix PNG beside it)."""
    out = Path(json_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    d = {"model": run.model, "data": run.data, "split": run.split, **run.evaluation.to_dict()}
    out.write_text(json.dumps(d, indent=2))
    if plot:
        plot_confusion(run.evaluation, out.with_suffix(".confusion.png"))
    return d
