"""The end of a run: the best weights exported as a float32 ``model.keras``, evaluated on the
validation and test splits, and recorded (``run.json``, ``history.json``, ``curves.png``)."""

from __future__ import annotations

import json
import platform
import shutil
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoedge.core.preprocess import PREPROCESSING, normalize
from emoedge.data.balance import training_mix
from emoedge.data.datasets import FaceDataset
from emoedge.metrics import Evaluation, evaluate_predictions
from emoedge.train.plots import plot_curves
from emoedge.train.predict import predict_probs

if TYPE_CHECKING:
    from emoedge.train.config import TrainConfig
    from emoedge.train.fit import Fitted
    from emoedge.train.inputs import Splits


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    model_path: Path
    best_epoch: int
    epochs_run: int
    train_seconds: float
    val: Evaluation
    test: Evaluation | None
    data_fingerprint: str


def library_versions() -> dict[str, str]:
    import cv2
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "numpy": np.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "opencv": cv2.__version__, "platform": platform.platform(),
            "machine": platform.machine()}


def constant_classifier(evaluation: Evaluation, share: float = 0.95, fine_tuned: bool = False) -> str | None:
    """A warning when one class takes ``share`` of the predictions (a constant classifier), else None."""
    cm = np.asarray(evaluation.confusion_matrix)
    if cm.sum() == 0:
        return None
    cols = cm.sum(axis=0)
    top = int(np.argmax(cols))
    if cols[top] < share * cm.sum():
        return None
    majority = cm.sum(axis=1).max() / cm.sum()
    return (f"the model predicts '{evaluation.class_names[top]}' for {cols[top] / cm.sum():.0%} of the validation "
            f"faces (accuracy {evaluation.accuracy:.1%}; the majority class alone: {majority:.1%}): a constant "
            "classifier. Train longer or with a lower learning rate"
            + ("" if fine_tuned else ", or fine-tune from a shipped model (--set init_from=default)"))


def export_model(config: TrainConfig, model: Any, rebuilt: bool, num_classes: int, out: Path) -> tuple[Any, Path]:
    """Save the best weights as ``out/model.keras`` in float32 whatever the training precision
    (rebuilding ``config.arch`` if it was bfloat16), drop the checkpoint and the resume backup."""
    import keras

    from emoedge.keras.io import as_float32
    from emoedge.train import zoo

    ckpt = out / "best.weights.h5"
    model.load_weights(str(ckpt))
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("float32")
        f32 = zoo.build(config.arch, num_classes, **config.arch_kwargs) if rebuilt else None
        if f32 is not None:
            f32.set_weights(model.get_weights())
            model = f32
    # any layer still in bfloat16 (a new head added under the mixed policy to a loaded float32 model)
    model = as_float32(model)
    model_path = out / "model.keras"
    model.save(model_path)
    ckpt.unlink(missing_ok=True)
    shutil.rmtree(out / "backup", ignore_errors=True)
    return model, model_path


def evaluate_and_record(config: TrainConfig, dataset: FaceDataset, data: Splits, model: Any, model_path: Path,
                        fitted: Fitted, out: Path) -> TrainResult:
    """Evaluate ``model`` on the validation and test splits; write ``run.json`` (config, data
    fingerprints, library versions, timings, metrics), ``history.json`` and ``curves.png``."""
    val_eval = evaluate_predictions(data.y_val, predict_probs(model, data.x_val), dataset.class_names)
    test_ds = data.test
    test_eval = None
    if test_ds is not None and len(test_ds):
        test_eval = evaluate_predictions(test_ds.labels, predict_probs(model, normalize(test_ds.images)),
                                         dataset.class_names)
    fingerprint = dataset.fingerprint()
    record = {
        "config": asdict(config),
        "class_names": list(dataset.class_names),
        "data": {"source": dataset.source, "format": dataset.meta.get("format"), "fingerprint_sha256": fingerprint,
                 "train_items": len(data.train), "val_items": len(data.val),
                 "test_items": 0 if test_ds is None else len(test_ds),
                 "train_fingerprint_sha256": data.train.fingerprint(),
                 "class_mix": training_mix(data.y_train, dataset.class_names, config.class_balance, config.seed)},
        "preprocessing": PREPROCESSING,
        "params": int(model.count_params()),
        "best_epoch": fitted.best_epoch, "epochs_run": fitted.epochs_run,
        "start_val_accuracy": fitted.start_val_accuracy,
        "train_seconds": round(fitted.train_seconds, 1),
        "versions": library_versions(),
        "command": " ".join(sys.argv),
        "val": val_eval.to_dict(),
        "test": None if test_eval is None else test_eval.to_dict(),
    }
    warning = constant_classifier(val_eval, fine_tuned=bool(config.init_from))
    if warning:
        record["warnings"] = [warning]
        warnings.warn(f"{out}: {warning}", stacklevel=2)
    (out / "run.json").write_text(json.dumps(record, indent=2))
    (out / "history.json").write_text(json.dumps(fitted.history, indent=2))
    plot_curves(fitted.history, out / "curves.png")
    return TrainResult(out, model_path, fitted.best_epoch, fitted.epochs_run, fitted.train_seconds, val_eval,
                       test_eval, fingerprint)
