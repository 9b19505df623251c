"""The steps of :func:`emoedge.train.trainer.train`, in the order it runs them: the data splits, the
training targets (a teacher's soft labels), the model (zoo, ``init_from``, precision), the tf.data
pipelines (augmentation, class balance), the resumable fit, the float32 export, and the evaluation
and run record. Keras and TensorFlow are imported inside the steps: ``train`` sets up oneDNN first."""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoedge.core.errors import BadInputError, ModelError
from emoedge.core.preprocess import PREPROCESSING, normalize
from emoedge.data.balance import class_weights, oversample, training_mix
from emoedge.data.datasets import FaceDataset
from emoedge.data.splits import split_seed_of, standard_splits, stratified_split
from emoedge.metrics import Evaluation, evaluate_predictions
from emoedge.train.trainer import (
    TrainResult,
    copy_layers_by_name,
    library_versions,
    make_augmenter,
    plot_curves,
    predict_probs,
    replace_head,
    teacher_targets,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from emoedge.train.trainer import TrainConfig


@dataclass(frozen=True)
class Splits:
    """The data of a run: the splits, and the normalised faces and labels the model sees."""
    train: FaceDataset
    val: FaceDataset
    test: FaceDataset | None
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int


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


def _has_1x1_stride2_conv(model: Any) -> bool:
    """Whether ``model`` has a 1x1 convolution with a stride above 1 (oneDNN cannot train those here)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k = layer.kernel_size
            s = layer.strides
            if tuple(k) == (1, 1) and max(s) > 1:
                return True
    return False


def _read_history(path: Path) -> dict[str, list[float]]:
    """The per-epoch log written by CSVLogger (all segments of a resumed run)."""
    import csv

    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
    return {k: [float(r[k]) for r in rows if r.get(k) not in (None, "")] for k in keys}


def data_splits(config: TrainConfig, dataset: FaceDataset, splits: dict[str, FaceDataset] | None) -> Splits:
    """The train/validation/test splits: ``splits``, or else :func:`standard_splits` of ``dataset``
    with the config's split seed; the training split capped at ``config.max_train_items``
    (stratified by ``config.seed``)."""
    if splits is None:
        splits = standard_splits(dataset, val_fraction=config.val_fraction, seed=split_seed_of(asdict(config)))
    train_ds, val_ds, test_ds = splits["train"], splits["val"], splits.get("test")
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise BadInputError(f"{dataset.source}: empty train ({len(train_ds)}) or validation ({len(val_ds)}) split")
    if config.max_train_items and len(train_ds) > config.max_train_items:
        frac = config.max_train_items / len(train_ds)
        keep, _ = stratified_split(train_ds.labels, [frac, 1 - frac], config.seed)
        train_ds = train_ds.subset(keep)
    return Splits(train_ds, val_ds, test_ds, normalize(train_ds.images), train_ds.labels,
                  normalize(val_ds.images), val_ds.labels, dataset.num_classes)


def targets(config: TrainConfig, data: Splits) -> np.ndarray:
    """The training targets (N, k): the one-hot labels, mixed with the dataset's vote distributions
    (``config.vote_weight`` of the target, FER+) and then with the teacher's softened probabilities
    (``config.soft_weight`` of the target) when ``config.soft_targets_from`` is set.
    Runs before the model is built: loading the teacher draws from the seeded generators."""
    k = data.num_classes
    target = np.eye(k, dtype=np.float32)[data.y_train]
    if config.vote_weight:
        if not 0.0 <= config.vote_weight <= 1.0:
            raise BadInputError(f"vote_weight must be in [0, 1], got {config.vote_weight}")
        votes = data.train.soft_labels
        if votes is None:
            raise BadInputError(f"vote_weight={config.vote_weight}: {data.train.source} has no vote "
                             f"distributions (FER+ has them: --labels ferplus); set vote_weight=0")
        votes = np.asarray(votes, dtype=np.float32)
        empty = votes.sum(axis=1) <= 0
        votes = np.where(empty[:, None], target, votes)  # a face without votes keeps its label
        print(f"targets: {config.vote_weight:.0%} the crowd's vote distribution, the rest the majority "
              f"label ({int(empty.sum())} faces without votes keep their label)", file=sys.stderr)
        target = config.vote_weight * votes + (1.0 - config.vote_weight) * target
    if not config.soft_targets_from:
        return target
    soft = teacher_targets(config, data.x_train, data.y_train, k)
    return config.soft_weight * soft + (1.0 - config.soft_weight) * target


def _source_class_names(init_from: str) -> tuple[str, ...] | None:
    """The classes of the model ``init_from`` names: a shipped model's, or the run.json beside a file."""
    from emoedge.core.shipped import MODELS_DIR, SHIPPED

    record = MODELS_DIR / f"{init_from}.run.json" if init_from in SHIPPED else Path(init_from).parent / "run.json"
    if not record.is_file():
        return None
    names = json.loads(record.read_text()).get("class_names")
    return tuple(names) if names else None


def _under_current_policy(config: TrainConfig, src: Any) -> Any:
    """``src`` rebuilt as ``config.arch`` under the current precision policy (bfloat16 compute with
    ``mixed_precision``: a loaded model keeps its saved float32 policy, ~2.6x slower to train here)
    when the weights match in shape; frozen layers stay frozen. Else ``src`` as it is."""
    import keras

    from emoedge.train import zoo

    saved = next((layer.dtype_policy.name for layer in src._flatten_layers(include_self=False) if layer.weights),
                 src.dtype_policy.name)
    if keras.mixed_precision.global_policy().name == saved:
        return src
    try:
        candidate = zoo.build(config.arch, src.output_shape[-1], **config.arch_kwargs)
    except (ValueError, TypeError, KeyError) as exc:
        print(f"init_from {config.init_from}: arch {config.arch} {config.arch_kwargs} cannot be built ({exc}); "
              f"it trains as saved ({saved})", file=sys.stderr)
        return src
    if [w.shape for w in candidate.weights] != [w.shape for w in src.weights]:
        print(f"init_from {config.init_from}: not arch {config.arch} {config.arch_kwargs}; it trains as saved "
              f"({saved})", file=sys.stderr)
        return src
    candidate.set_weights(src.get_weights())
    for a, b in zip(candidate._flatten_layers(include_self=False), src._flatten_layers(include_self=False)):
        a.trainable = b.trainable
    print(f"init_from {config.init_from}: rebuilt as {config.arch} under {keras.mixed_precision.global_policy().name} "
          f"with its weights", file=sys.stderr)
    return candidate


def _start_from(config: TrainConfig, k: int, class_names=None) -> tuple[Any, bool]:
    """The model ``config.init_from`` starts, and whether it is the zoo's ``config.arch``: with the
    same classes, ``config.arch`` rebuilt under the current precision policy with the saved weights
    (all of them, or the layers matching by name and shape); else the saved model (new head if needed)."""
    from emoedge.core.shipped import SHIPPED
    from emoedge.keras.io import load_keras
    from emoedge.train import zoo
    from emoedge.train.masters import FUSIONS, master_member

    if config.init_from in SHIPPED:
        import keras

        src = master_member(config.init_from)
        # the master's BatchNorm layers hold the folded statistics as an identity; in training mode they
        # would normalize by batch statistics instead and change what the network computes: frozen
        # (inference mode), the convolutions and dense layers train
        frozen = 0
        for layer in src._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
                frozen += 1
        print(f"init_from {config.init_from}: the shipped model's float master, rebuilt from its int8 file"
              + (" (the first member of its fusion)" if config.init_from in FUSIONS else "")
              + f"; its {frozen} BatchNorm layers frozen", file=sys.stderr)
    elif str(config.init_from).endswith((".tflite", ".onnx")):
        raise ModelError(f"{config.init_from}: init_from takes a Keras file or a shipped model's name "
                         f"({', '.join(n for n in SHIPPED if n != 'hoglbp')}), not a {Path(config.init_from).suffix} "
                         "file: a converted model cannot be trained")
    else:
        src = load_keras(config.init_from)
    if src.output_shape[-1] != k:
        src = _under_current_policy(config, src)
        old = _source_class_names(config.init_from)
        keep = None
        if old and class_names and set(class_names) & set(old) and len(old) == src.output_shape[-1]:
            keep = [old.index(c) if c in old else None for c in class_names]
        shared = [c for c, i in zip(class_names or (), keep or ()) if i is not None]
        new = [c for c, i in zip(class_names or (), keep or ()) if i is None]
        print(f"init_from {config.init_from}: {src.output_shape[-1]} classes -> {k}: its classifier is replaced by a "
              "new one for the new classes (the features are kept)"
              + (f"; the new classifier starts as its rows for {', '.join(shared)} (what it knows of them is kept)"
                 if keep else "")
              + (f"; {', '.join(new)} start fresh" if new else ""), file=sys.stderr)
        return replace_head(src, k, keep), False
    # Same classes: continue training. Rebuild config.arch under the current precision
    # policy and copy the weights (a loaded model keeps its saved float32 policy).
    candidate = zoo.build(config.arch, k, **config.arch_kwargs)
    if [w.shape for w in candidate.weights] == [w.shape for w in src.weights]:
        candidate.set_weights(src.get_weights())
        for a, b in zip(candidate._flatten_layers(include_self=False), src._flatten_layers(include_self=False)):
            a.trainable = b.trainable   # frozen layers stay frozen (a master's BatchNorm: its folded identity)
        return candidate, True
    copied, fresh = copy_layers_by_name(src, candidate)
    by_name = {layer.name: layer for layer in src.layers}
    for layer in candidate.layers:
        if layer.name in copied:
            layer.trainable = by_name[layer.name].trainable
    if copied:
        # a smaller relative (e.g. a layer dropped): seed what matches, train the rest
        print(f"init_from {config.init_from}: arch {config.arch} {config.arch_kwargs} differs; "
              f"copied {len(copied)} layers by name and shape, {len(fresh)} start fresh: "
              f"{', '.join(fresh) or '-'}", file=sys.stderr)
        return candidate, True
    print(f"init_from {config.init_from}: no layer of arch {config.arch} {config.arch_kwargs} "
          f"matches it by name and shape; training the loaded model as saved (float32)", file=sys.stderr)
    return src, False


def build_model(config: TrainConfig, num_classes: int, class_names=None) -> tuple[Any, bool]:
    """The model to train, under the training precision (bfloat16 if ``config.mixed_precision``),
    from the zoo or started from ``config.init_from``; and whether it is the zoo's ``config.arch``
    (so it can be rebuilt in float32 for export). Refuses what oneDNN cannot train."""
    import keras

    from emoedge.train import zoo

    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        if config.init_from:
            model, rebuilt = _start_from(config, num_classes, class_names)
        else:
            model, rebuilt = zoo.build(config.arch, num_classes, **config.arch_kwargs), True
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if config.onednn and _has_1x1_stride2_conv(model):
        raise BadInputError(f"{config.arch}: has 1x1 stride-2 convolutions, whose oneDNN backward pass corrupts "
                         f"the heap on this CPU; train it without --onednn")
    return model, rebuilt


SMALL_DATA_STEPS = 50   # steps per epoch below which the batch shrinks (config.fit_batch_to_data)
MIN_SMALL_BATCH = 32


def fit_batch_to_data(config: TrainConfig, n_train: int) -> TrainConfig:
    """``config`` with a smaller batch when the training split gives fewer than SMALL_DATA_STEPS steps
    per epoch: the largest power of two (not below MIN_SMALL_BATCH) that gives at least that many.
    Measured on 1,620 faces of 3 classes, from scratch, 12 epochs: batch 128 (13 steps) reached 48.3%
    validation accuracy, batch 32 (51 steps) 62.8%."""
    from dataclasses import replace

    if not config.fit_batch_to_data or n_train // config.batch_size >= SMALL_DATA_STEPS:
        return config
    batch = MIN_SMALL_BATCH
    while batch * 2 <= config.batch_size and n_train // (batch * 2) >= SMALL_DATA_STEPS:
        batch *= 2
    if batch >= config.batch_size:
        return config
    print(f"small data ({n_train:,} training faces): batch {batch} instead of {config.batch_size}, so an epoch "
          f"has {math.ceil(n_train / batch)} steps, not {math.ceil(n_train / config.batch_size)} "
          f"(fit_batch_to_data; keep the batch with --set batch_size=N)", file=sys.stderr)
    return replace(config, batch_size=batch)


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


def datasets(config: TrainConfig, data: Splits, y_train: np.ndarray) -> tuple[Any, Any]:
    """The training pipeline (oversampled or with per-face class weights as ``config.class_balance``
    asks; shuffled by ``config.seed``, batched, augmented) and the validation pipeline."""
    import tensorflow as tf

    order = _training_order(config, data)
    augment = make_augmenter(config.augment, config.seed)
    y_val = np.eye(data.num_classes, dtype=np.float32)[data.y_val]
    cw = class_weights(data.y_train, data.num_classes, config.class_balance)
    if cw is not None:
        sample_w = np.array([cw[int(c)] for c in data.y_train], dtype=np.float32)
        tds = tf.data.Dataset.from_tensor_slices((data.x_train[order], y_train[order], sample_w[order]))
    else:
        tds = tf.data.Dataset.from_tensor_slices((data.x_train[order], y_train[order]))
    tds = (tds.shuffle(len(order), seed=config.seed, reshuffle_each_iteration=True)
           .batch(config.batch_size)
           .map(lambda x, *rest: (augment(x), *rest), num_parallel_calls=tf.data.AUTOTUNE)
           .prefetch(tf.data.AUTOTUNE))
    vds = tf.data.Dataset.from_tensor_slices((data.x_val, y_val)).batch(256).prefetch(tf.data.AUTOTUNE)
    return tds, vds


def _training_order(config: TrainConfig, data: Splits) -> np.ndarray:
    """Indices of the training faces in one epoch (oversampled for ``class_balance: oversample``)."""
    if config.class_balance == "oversample":
        return oversample(data.y_train, config.seed)
    return np.arange(len(data.y_train))


def steps_per_epoch(config: TrainConfig, data: Splits) -> int:
    """Training batches per epoch."""
    return math.ceil(len(_training_order(config, data)) / config.batch_size)


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
