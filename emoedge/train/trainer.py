"""Keras training for 48x48 grayscale faces: augmentation, class balancing, early stopping,
a learning-rate schedule, best-checkpoint on validation, seeds, curves and a recorded run."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from emoedge.data.datasets import FaceDataset
from emoedge.data.splits import SPLIT_SEED, split_seed_of, standard_splits
from emoedge.edge.preprocess import PREPROCESSING, normalize
from emoedge.keras import tf_env
from emoedge.metrics import Evaluation, evaluate_predictions


@dataclass(frozen=True)
class Augment:
    """Random training-time transforms (0 switches one off)."""
    flip: bool = True
    rotation_deg: float = 12.0
    zoom: float = 0.12          # +- fraction (zoom in/out, i.e. crop/pad)
    shift: float = 0.08         # +- fraction of width/height
    brightness: float = 0.15    # +- in [0,1] pixel units
    contrast: float = 0.25      # +- factor
    blur_prob: float = 0.1      # probability of a 3x3 Gaussian blur
    erase_prob: float = 0.25    # probability of erasing a random rectangle (cutout)


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "vgg"
    arch_kwargs: dict = field(default_factory=dict)
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_epochs: float = 1.0
    schedule: str = "cosine"            # cosine | plateau | constant
    label_smoothing: float = 0.0
    class_balance: str = "none"         # none | weights | sqrt-weights | oversample
    early_stopping_patience: int = 8     # epochs without a better val accuracy; 0 = off
    val_fraction: float = 0.1
    seed: int = SPLIT_SEED               # weights, augmentation and shuffle order
    split_seed: int | None = None        # the train/validation split (None: seed). Keep it when training
                                         # another ensemble member so no member sees the others' validation faces
    augment: Augment = field(default_factory=Augment)
    onednn: bool = False                 # oneDNN kernels (faster; refused for 1x1 stride-2 convs)
    mixed_precision: bool = False        # bfloat16 compute (needs oneDNN to be fast)
    init_from: str | None = None         # fine-tune from this .keras model (new head if classes differ)
    max_train_items: int | None = None   # cap for quick runs (stratified by seed)
    # Knowledge distillation: train on a mix of a teacher's class probabilities (the mean over the
    # face and its mirror, softened by soft_temperature) and the one-hot labels.
    soft_targets_from: str | None = None  # teacher .keras model with the same classes
    soft_weight: float = 0.7             # share of the teacher in the target (0..1)
    soft_temperature: float = 2.0        # > 1 softens the teacher's distribution

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; allowed: {sorted(names)}")
        d = dict(d)
        if isinstance(d.get("augment"), dict):
            anames = {f.name for f in fields(Augment)}
            bad = sorted(set(d["augment"]) - anames)
            if bad:
                raise ValueError(f"unknown augment option(s) {bad}; allowed: {sorted(anames)}")
            d["augment"] = Augment(**d["augment"])
        return cls(**d)


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


def _class_weights(labels: np.ndarray, k: int, mode: str) -> dict[int, float] | None:
    if mode in ("none", "oversample"):
        return None
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    counts[counts == 0] = 1
    w = counts.sum() / (k * counts)
    if mode == "sqrt-weights":
        w = np.sqrt(w)
    elif mode != "weights":
        raise ValueError(f"class_balance must be none, weights, sqrt-weights or oversample, got {mode!r}")
    w = w / (w * counts).sum() * counts.sum()  # keep the mean loss scale
    return {i: float(v) for i, v in enumerate(w)}


def _oversample(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices with every class repeated up to the median class count."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    target = int(np.median(counts))
    out = []
    for c, n in zip(classes, counts):
        idx = np.flatnonzero(labels == c)
        if n < target:
            idx = np.concatenate([idx, rng.choice(idx, target - n, replace=True)])
        out.append(idx)
    return rng.permutation(np.concatenate(out))


def make_augmenter(aug: Augment, seed: int):
    """A function (batch float32 (B,48,48,1) in [0,1]) -> augmented batch, in TensorFlow ops."""
    import keras
    import tensorflow as tf

    geo = []
    if aug.flip:
        geo.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if aug.rotation_deg:
        geo.append(keras.layers.RandomRotation(aug.rotation_deg / 360.0, fill_mode="reflect", seed=seed + 1))
    if aug.zoom:
        geo.append(keras.layers.RandomZoom((-aug.zoom, aug.zoom), fill_mode="reflect", seed=seed + 2))
    if aug.shift:
        geo.append(keras.layers.RandomTranslation(aug.shift, aug.shift, fill_mode="reflect", seed=seed + 3))
    geo_model = keras.Sequential(geo) if geo else None
    kernel = tf.constant(np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32)[:, :, None, None] / 16.0)
    gen = tf.random.Generator.from_seed(seed + 4)

    def apply(x):
        b = tf.shape(x)[0]
        if geo_model is not None:
            x = geo_model(x, training=True)
        if aug.brightness:
            x = x + gen.uniform((b, 1, 1, 1), -aug.brightness, aug.brightness)
        if aug.contrast:
            mean = tf.reduce_mean(x, axis=(1, 2, 3), keepdims=True)
            x = (x - mean) * gen.uniform((b, 1, 1, 1), 1 - aug.contrast, 1 + aug.contrast) + mean
        if aug.blur_prob:
            blurred = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC"), kernel, 1, "VALID")
            x = tf.where(gen.uniform((b, 1, 1, 1)) < aug.blur_prob, blurred, x)
        if aug.erase_prob:
            h = tf.shape(x)[1]
            w = tf.shape(x)[2]
            size = tf.cast(tf.cast(h, tf.float32) * gen.uniform((b, 1, 1), 0.15, 0.35), tf.int32)
            cy = gen.uniform((b, 1, 1), 0, 1) * tf.cast(h, tf.float32)
            cx = gen.uniform((b, 1, 1), 0, 1) * tf.cast(w, tf.float32)
            yy = tf.cast(tf.range(h), tf.float32)[None, :, None]
            xx = tf.cast(tf.range(w), tf.float32)[None, None, :]
            half = tf.cast(size, tf.float32) / 2
            inside = (tf.abs(yy - cy) < half) & (tf.abs(xx - cx) < half)
            do = gen.uniform((b, 1, 1)) < aug.erase_prob
            fill = gen.uniform((b, 1, 1), 0, 1)
            x = tf.where((inside & do)[..., None], fill[..., None], x)
        return tf.clip_by_value(x, 0.0, 1.0)

    return apply


def _has_1x1_stride2_conv(model) -> bool:
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k = layer.kernel_size
            s = layer.strides
            if tuple(k) == (1, 1) and max(s) > 1:
                return True
    return False


def replace_head(model, num_classes: int):
    """Keep the features of ``model`` and put a fresh classifier for ``num_classes`` on top."""
    import keras
    from keras import layers

    old_k = model.output_shape[-1]
    # the classifier: last layer with weights whose output has old_k channels
    clf = None
    for layer in reversed(model.layers):
        if layer.weights and layer.output.shape[-1] == old_k:
            clf = layer
            break
    if clf is None:
        raise ValueError(f"cannot find the classifier layer of {model.name}")
    feats = clf.input
    if len(feats.shape) == 4:
        x = layers.Conv2D(num_classes, 3, padding="same", name="class_conv_new")(feats)
        x = layers.GlobalAveragePooling2D(name="gap_new")(x)
    else:
        x = layers.Dense(num_classes, name="probs_new_dense")(feats)
    out = layers.Activation("softmax", name="probs_new")(x)
    return keras.Model(model.input, out, name=model.name + "_finetuned")


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities at a higher temperature: softmax(log(p) / T)."""
    if temperature <= 0:
        raise ValueError(f"soft_temperature must be > 0, got {temperature}")
    logp = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    e = np.exp(logp)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def copy_layers_by_name(src, dst) -> tuple[list[str], list[str]]:
    """Copy into ``dst`` the weights of every layer that ``src`` has under the same name with the
    same weight shapes. Returns (copied, left fresh) names of ``dst``'s layers that have weights."""
    by_name = {layer.name: layer for layer in src.layers}
    copied, fresh = [], []
    for layer in dst.layers:
        if not layer.weights:
            continue
        other = by_name.get(layer.name)
        if other is not None and [w.shape for w in other.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(other.get_weights())
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    return copied, fresh


def teacher_targets(config: TrainConfig, x_train: np.ndarray, y_train: np.ndarray, k: int) -> np.ndarray:
    """The teacher's softened probabilities for each (un-augmented) training face, mean of face and mirror."""
    from emoedge.keras.io import load_keras

    if not 0.0 <= config.soft_weight <= 1.0:
        raise ValueError(f"soft_weight must be in [0, 1], got {config.soft_weight}")
    teacher = load_keras(config.soft_targets_from)
    if teacher.output_shape[-1] != k:
        raise ValueError(f"{config.soft_targets_from}: the teacher has {teacher.output_shape[-1]} classes, "
                         f"the data {k}")
    p = (predict_probs(teacher, x_train) + predict_probs(teacher, x_train[:, :, ::-1])) / 2.0
    print(f"soft targets from {config.soft_targets_from}: the teacher agrees with "
          f"{float(np.mean(p.argmax(1) == y_train)):.1%} of the training labels; T={config.soft_temperature}, "
          f"weight {config.soft_weight}", file=sys.stderr)
    return soften(p, config.soft_temperature)


def _read_history(path: Path) -> dict[str, list[float]]:
    """The per-epoch log written by CSVLogger (all segments of a resumed run)."""
    import csv

    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
    return {k: [float(r[k]) for r in rows if r.get(k) not in (None, "")] for k in keys}


def predict_probs(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def plot_curves(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ep = np.arange(1, len(history.get("loss", [])) + 1)
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        if key in history:
            ax.plot(ep, history[key], label="train")
        if "val_" + key in history:
            ax.plot(ep, history["val_" + key], label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    if "learning_rate" in history:
        axes[2].plot(ep, history["learning_rate"])
        axes[2].set_title("learning rate (end of epoch)")
        axes[2].set_xlabel("epoch")
        axes[2].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(config: TrainConfig, dataset: FaceDataset, out_dir: str | os.PathLike,
          splits: dict[str, FaceDataset] | None = None, verbose: int | None = None) -> TrainResult:
    """Train ``config.arch`` on ``dataset`` and write the run to ``out_dir``.

    ``splits`` (train/val/test) defaults to :func:`standard_splits` of the dataset. The best
    model on validation accuracy is saved as ``model.keras`` (float32), with ``run.json``
    (config, data fingerprint, library versions, timings, metrics), ``history.json``,
    ``curves.png`` and the validation/test evaluations.
    """
    if config.onednn:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
    tf_env.check_onednn(config.onednn)
    import keras
    import tensorflow as tf

    from emoedge.train import models as zoo
    from emoedge.train.progress import EpochProgress

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    if splits is None:
        splits = standard_splits(dataset, val_fraction=config.val_fraction, seed=split_seed_of(asdict(config)))
    train_ds, val_ds, test_ds = splits["train"], splits["val"], splits.get("test")
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise ValueError(f"{dataset.source}: empty train ({len(train_ds)}) or validation ({len(val_ds)}) split")
    if config.max_train_items and len(train_ds) > config.max_train_items:
        from emoedge.data.splits import stratified_split

        frac = config.max_train_items / len(train_ds)
        keep, _ = stratified_split(train_ds.labels, [frac, 1 - frac], config.seed)
        train_ds = train_ds.subset(keep)
    k = dataset.num_classes
    x_train, y_train = normalize(train_ds.images), train_ds.labels
    x_val, y_val = normalize(val_ds.images), val_ds.labels

    soft = teacher_targets(config, x_train, y_train, k) if config.soft_targets_from else None

    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    rebuilt = True  # the model is the zoo's config.arch (so it can be rebuilt in float32 for export)
    try:
        if config.init_from:
            from emoedge.keras.io import load_keras

            src = load_keras(config.init_from)
            model = None
            if src.output_shape[-1] == k:
                # Same classes: continue training. Rebuild config.arch under the current precision
                # policy and copy the weights (a loaded model keeps its saved float32 policy).
                candidate = zoo.build(config.arch, k, **config.arch_kwargs)
                if [w.shape for w in candidate.weights] == [w.shape for w in src.weights]:
                    candidate.set_weights(src.get_weights())
                    model = candidate
                else:
                    copied, fresh = copy_layers_by_name(src, candidate)
                    if copied:
                        # a smaller relative (e.g. a layer dropped): seed what matches, train the rest
                        print(f"init_from {config.init_from}: arch {config.arch} {config.arch_kwargs} differs; "
                              f"copied {len(copied)} layers by name and shape, {len(fresh)} start fresh: "
                              f"{', '.join(fresh) or '-'}", file=sys.stderr)
                        model = candidate
                    else:
                        print(f"init_from {config.init_from}: no layer of arch {config.arch} {config.arch_kwargs} "
                              f"matches it by name and shape; training the loaded model as saved (float32)",
                              file=sys.stderr)
            if model is None:
                rebuilt = False
                model = src if src.output_shape[-1] == k else replace_head(src, k)
        else:
            model = zoo.build(config.arch, k, **config.arch_kwargs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if config.onednn and _has_1x1_stride2_conv(model):
        raise ValueError(f"{config.arch}: has 1x1 stride-2 convolutions, whose oneDNN backward pass corrupts "
                         f"the heap on this CPU; train it without --onednn")

    order = _oversample(y_train, config.seed) if config.class_balance == "oversample" else np.arange(len(y_train))
    steps_per_epoch = math.ceil(len(order) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            config.learning_rate * (0.1 if warmup else 1.0), max(1, total_steps - warmup), alpha=0.01,
            warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)
    elif config.schedule in ("plateau", "constant"):
        lr = config.learning_rate
    else:
        raise ValueError(f"schedule must be cosine, plateau or constant, got {config.schedule!r}")
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=["accuracy"])

    augment = make_augmenter(config.augment, config.seed)
    y_train_1h = np.eye(k, dtype=np.float32)[y_train]
    if soft is not None:
        y_train_1h = config.soft_weight * soft + (1.0 - config.soft_weight) * y_train_1h
    y_val_1h = np.eye(k, dtype=np.float32)[y_val]
    cw = _class_weights(y_train, k, config.class_balance)
    if cw is not None:
        sample_w = np.array([cw[int(c)] for c in y_train], dtype=np.float32)
        tds = tf.data.Dataset.from_tensor_slices((x_train[order], y_train_1h[order], sample_w[order]))
    else:
        tds = tf.data.Dataset.from_tensor_slices((x_train[order], y_train_1h[order]))
    tds = (tds.shuffle(len(order), seed=config.seed, reshuffle_each_iteration=True)
           .batch(config.batch_size)
           .map(lambda x, *rest: (augment(x), *rest), num_parallel_calls=tf.data.AUTOTUNE)
           .prefetch(tf.data.AUTOTUNE))
    vds = tf.data.Dataset.from_tensor_slices((x_val, y_val_1h)).batch(256).prefetch(tf.data.AUTOTUNE)

    ckpt = out / "best.weights.h5"
    resuming = (out / "backup").is_dir() and (out / "history.csv").is_file()
    if resuming:  # keep exactly the epochs the backup holds (a cut can fall between the log and the backup)
        meta = out / "backup" / "training_metadata.json"
        done = int(json.loads(meta.read_text()).get("epoch", 0)) if meta.is_file() else 0
        lines = (out / "history.csv").read_text().splitlines(keepends=True)
        (out / "history.csv").write_text("".join(lines[:1 + done]))
    prior = _read_history(out / "history.csv") if resuming else {}
    prior_seconds = float(json.loads((out / "backup" / "elapsed.json").read_text())["seconds"]) \
        if resuming and (out / "backup" / "elapsed.json").is_file() else 0.0
    t0 = time.time()

    class _Elapsed(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            (out / "backup").mkdir(exist_ok=True)
            (out / "backup" / "elapsed.json").write_text(json.dumps({"seconds": prior_seconds + time.time() - t0}))

    callbacks: list[Any] = [
        keras.callbacks.ModelCheckpoint(str(ckpt), monitor="val_accuracy", mode="max", save_best_only=True,
                                        save_weights_only=True,
                                        initial_value_threshold=max(prior.get("val_accuracy", [None]) or [None],
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
    if resuming:
        print(f"resuming {out} after epoch {len(prior.get('loss', []))}", file=sys.stderr)
    hist = model.fit(tds, validation_data=vds, epochs=config.epochs, callbacks=callbacks, verbose=0,
                     shuffle=False)  # tf.data shuffles
    train_seconds = prior_seconds + time.time() - t0
    history = _read_history(out / "history.csv") or {k_: [float(v) for v in vals] for k_, vals in hist.history.items()}
    best_epoch = int(np.argmax(history["val_accuracy"])) + 1

    # Export in float32 whatever the training precision was.
    model.load_weights(str(ckpt))
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("float32")
        f32 = zoo.build(config.arch, k, **config.arch_kwargs) if rebuilt else None
        if f32 is not None:
            f32.set_weights(model.get_weights())
            model = f32
    model_path = out / "model.keras"
    model.save(model_path)
    ckpt.unlink(missing_ok=True)
    shutil.rmtree(out / "backup", ignore_errors=True)

    val_eval = evaluate_predictions(y_val, predict_probs(model, x_val), dataset.class_names)
    test_eval = None
    if test_ds is not None and len(test_ds):
        test_eval = evaluate_predictions(test_ds.labels, predict_probs(model, normalize(test_ds.images)),
                                         dataset.class_names)
    fingerprint = dataset.fingerprint()
    record = {
        "config": asdict(config),
        "class_names": list(dataset.class_names),
        "data": {"source": dataset.source, "fingerprint_sha256": fingerprint,
                 "train_items": len(train_ds), "val_items": len(val_ds),
                 "test_items": 0 if test_ds is None else len(test_ds),
                 "train_fingerprint_sha256": train_ds.fingerprint()},
        "preprocessing": PREPROCESSING,
        "params": int(model.count_params()),
        "best_epoch": best_epoch, "epochs_run": len(history["loss"]),
        "train_seconds": round(train_seconds, 1),
        "versions": library_versions(),
        "command": " ".join(sys.argv),
        "val": val_eval.to_dict(),
        "test": None if test_eval is None else test_eval.to_dict(),
    }
    (out / "run.json").write_text(json.dumps(record, indent=2))
    (out / "history.json").write_text(json.dumps(history, indent=2))
    plot_curves(history, out / "curves.png")
    return TrainResult(out, model_path, best_epoch, len(history["loss"]), train_seconds, val_eval, test_eval,
                       fingerprint)
