"""Fitting a built model: BatchNorm fitted to small data, a new head trained alone, the optimizer and
schedule, and the resumable fit that keeps the best weights on validation accuracy (the starting
model of a fine-tune among the candidates). Keras is imported inside the functions."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoedge.core.errors import BadInputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from emoedge.train.config import TrainConfig
    from emoedge.train.inputs import Splits


def fit_batchnorm_to_data(model: Any, steps_per_epoch: int) -> float | None:
    """On small data, lower every BatchNormalization layer's momentum to ``1 - 3 / steps_per_epoch``
    (Keras's 0.99 averages over ~100 steps; a 1,800-face dataset has 14 per epoch, so after a few
    epochs the moving statistics are still mostly their initial values and the model, in inference
    mode, predicts one class). Returns the momentum set, or None when the data is large enough
    (100 steps per epoch or more: FER2013's 202 keep Keras's default)."""
    import keras

    if steps_per_epoch >= 100:
        return None
    momentum = round(1.0 - 3.0 / max(1, steps_per_epoch), 3)
    bns = [layer for layer in model._flatten_layers(include_self=False)
           if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]   # frozen ones keep theirs
    if not bns or momentum >= min(b.momentum for b in bns):
        return None
    momentum = max(0.5, momentum)
    for b in bns:
        b.momentum = momentum
    print(f"small data ({steps_per_epoch} steps per epoch): BatchNorm momentum {momentum} in {len(bns)} layers, so "
          "their statistics settle within an epoch", file=sys.stderr)
    return momentum


def train_new_head(config: TrainConfig, model: Any, data: Splits, y_train: np.ndarray) -> int:
    """Train only the classifier that :func:`replace_head` put on a fine-tuned model, for
    ``config.head_epochs`` epochs (Adam 1e-3, the training faces as they are), the features frozen; so
    the whole network's training starts from a head that fits them instead of a random one, whose
    gradients would otherwise rewrite what the features know. Returns the number of head layers."""
    import keras

    head = [la for la in model.layers if la.name.endswith(("_new", "_new_dense"))]
    if not head or not config.head_epochs:
        return 0
    was = {la.name: la.trainable for la in model.layers}
    for la in model.layers:
        la.trainable = la in head
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CategoricalCrossentropy(),
                  metrics=["accuracy"])
    hist = model.fit(data.x_train, y_train, batch_size=config.batch_size, epochs=config.head_epochs, verbose=0,
                     validation_data=(data.x_val, np.eye(data.num_classes, dtype=np.float32)[data.y_val]))
    for la in model.layers:
        la.trainable = was[la.name]
    print(f"new head trained alone for {config.head_epochs} epochs (features frozen): val accuracy "
          f"{hist.history['val_accuracy'][-1]:.4f}", file=sys.stderr)
    return len(head)


def compile_model(config: TrainConfig, model: Any, steps_per_epoch: int) -> None:
    """Adam with ``config.schedule`` (cosine decay after a warm-up, or a fixed rate that ``plateau``
    halves in a callback) and cross-entropy with ``config.label_smoothing``."""
    import keras

    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            config.learning_rate * (0.1 if warmup else 1.0), max(1, total_steps - warmup), alpha=0.01,
            warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)
    elif config.schedule in ("plateau", "constant"):
        lr = config.learning_rate
    else:
        raise BadInputError(f"schedule must be cosine, plateau or constant, got {config.schedule!r}")
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=["accuracy"])


@dataclass(frozen=True)
class Fitted:
    """What the fit leaves besides the weights: the per-epoch history (every segment of a resumed run)."""
    history: dict[str, list[float]]
    best_epoch: int       # 1-based, best validation accuracy; 0 = the starting model (init_from) was kept
    train_seconds: float  # including the earlier segments of a resumed run
    start_val_accuracy: float | None = None   # the init_from model's, before training

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("loss", []))


def _read_history(path: Path) -> dict[str, list[float]]:
    """The per-epoch log written by CSVLogger (all segments of a resumed run)."""
    import csv

    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
    return {k: [float(r[k]) for r in rows if r.get(k) not in (None, "")] for k in keys}


def _resume_state(out: Path) -> tuple[bool, dict[str, list[float]], float]:
    """Whether ``out`` holds an interrupted run, its history so far (the log cut back to the epochs
    its backup holds: a cut can fall between the log and the backup) and its training seconds."""
    resuming = (out / "backup").is_dir() and (out / "history.csv").is_file()
    if not resuming:
        return False, {}, 0.0
    meta = out / "backup" / "training_metadata.json"
    done = int(json.loads(meta.read_text()).get("epoch", 0)) if meta.is_file() else 0
    lines = (out / "history.csv").read_text().splitlines(keepends=True)
    (out / "history.csv").write_text("".join(lines[:1 + done]))
    elapsed = out / "backup" / "elapsed.json"
    prior_seconds = float(json.loads(elapsed.read_text())["seconds"]) if elapsed.is_file() else 0.0
    return True, _read_history(out / "history.csv"), prior_seconds


def _callbacks(config: TrainConfig, out: Path, resuming: bool, prior: dict[str, list[float]],
               seconds: Callable[[], float], verbose: int | None, start: float | None = None) -> list[Any]:
    """Best checkpoint on validation accuracy (above the resumed run's best and the starting model's
    ``start``), the CSV log, elapsed time and progress, the backup a cut run resumes from, and the
    schedule's and early stopping's."""
    import keras

    from emoedge.train.progress import EpochProgress

    class _Elapsed(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            (out / "backup").mkdir(exist_ok=True)
            (out / "backup" / "elapsed.json").write_text(json.dumps({"seconds": seconds()}))

    callbacks: list[Any] = [
        keras.callbacks.ModelCheckpoint(str(out / "best.weights.h5"), monitor="val_accuracy", mode="max",
                                        save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=max([*prior.get("val_accuracy", []), start],
                                                                    key=lambda v: -1 if v is None else v)),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=resuming),
        _Elapsed(),
        EpochProgress(config.epochs, verbose=verbose),
        # an interrupted run (power cut, session end) resumes from its last finished epoch when the
        # same command is run again with the same output folder
        keras.callbacks.BackupAndRestore(str(out / "backup")),
    ]
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", mode="max", factor=0.5,
                                                           patience=max(2, config.early_stopping_patience // 3)))
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                                       patience=config.early_stopping_patience))
    return callbacks


START = "start.json"   # in a run folder: the init_from model's validation accuracy before training


def score_start(config: TrainConfig, model: Any, vds: Any, out: Path, resuming: bool) -> float | None:
    """A fine-tune (``init_from``) starts from a model that is already a candidate: its validation
    accuracy before training is scored and its weights saved as the best so far, so an epoch must beat
    it to replace it (a fine-tune that only makes things worse returns what it started from, and says
    so). Remembered in ``out/start.json`` for a resumed run. None without ``init_from``."""
    if not config.init_from:
        return None
    path = out / START
    if resuming and path.is_file():
        return float(json.loads(path.read_text())["val_accuracy"])
    start = float(model.evaluate(vds, verbose=0, return_dict=True)["accuracy"])
    model.save_weights(str(out / "best.weights.h5"))
    path.write_text(json.dumps({"init_from": str(config.init_from), "val_accuracy": start}))
    print(f"init_from {config.init_from}: validation accuracy {start:.2%} before training; an epoch must beat it "
          "to replace it", file=sys.stderr)
    return start


def fit(config: TrainConfig, model: Any, tds: Any, vds: Any, out: Path, verbose: int | None) -> Fitted:
    """Fit the compiled ``model`` for ``config.epochs``, keeping the best weights on validation
    accuracy in ``out/best.weights.h5`` (the starting model of a fine-tune among the candidates:
    :func:`score_start`; ``epochs: 0`` keeps it as it is); continues an interrupted run found in ``out``."""
    resuming, prior, prior_seconds = _resume_state(out)
    t0 = time.time()

    def seconds() -> float:
        return prior_seconds + time.time() - t0

    start = score_start(config, model, vds, out, resuming)
    history: dict[str, list[float]] = {}
    if config.epochs > 0:
        callbacks = _callbacks(config, out, resuming, prior, seconds, verbose, start)
        if resuming:
            print(f"resuming {out} after epoch {len(prior.get('loss', []))}", file=sys.stderr)
        hist = model.fit(tds, validation_data=vds, epochs=config.epochs, callbacks=callbacks, verbose=0,
                         shuffle=False)  # tf.data shuffles
        history = _read_history(out / "history.csv") or {k: [float(v) for v in vals]
                                                           for k, vals in hist.history.items()}
    train_seconds = seconds()
    val = history.get("val_accuracy", [])
    best_epoch = int(np.argmax(val)) + 1 if val else 0
    if start is not None and (not val or start >= max(val)):
        best_epoch = 0
        print(f"init_from {config.init_from}: no epoch beat its validation accuracy {start:.2%}"
              + (f" (best {max(val):.2%})" if val else " (epochs: 0)") + "; the model is the one it started from",
              file=sys.stderr)
    return Fitted(history, best_epoch, train_seconds, start)
