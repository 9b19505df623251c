"""Keras training for 48x48 grayscale faces: augmentation, class balancing, early stopping,
a learning-rate schedule, best-checkpoint on validation, seeds, curves and a recorded run."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from emoedge.core.errors import BadInputError
from emoedge.core.temperature import apply_temperature
from emoedge.data.datasets import FaceDataset
from emoedge.data.splits import SPLIT_SEED
from emoedge.keras import tf_env
from emoedge.metrics import Evaluation


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
    init_from: str | None = None         # fine-tune from this .keras model or shipped name (new head if classes differ)
    head_epochs: int = 5                 # with a new head: epochs training it alone (the features frozen) first
    finetune_lr_scale: float = 0.05      # with a new head: the whole network then trains at learning_rate x this
    max_train_items: int | None = None   # cap for quick runs (stratified by seed)
    # Small data: with fewer than SMALL_DATA_STEPS steps per epoch at batch_size, the batch shrinks
    # (to a power of two, not below 32) so an epoch has about that many steps (said in the log).
    # Set false, or give batch_size with --set, to keep batch_size as it is.
    fit_batch_to_data: bool = True
    # Knowledge distillation: train on a mix of a teacher's class probabilities (the mean over the
    # face and its mirror, softened by soft_temperature) and the one-hot labels.
    soft_targets_from: str | None = None  # teacher .keras model with the same classes
    soft_weight: float = 0.7             # share of the teacher in the target (0..1)
    soft_temperature: float = 2.0        # > 1 softens the teacher's distribution
    # Crowd votes as targets (FER+): the share of the dataset's vote distribution in the target,
    # the rest the (majority) label. 0 = labels only; 1 = votes only (the FER+ paper's "PLD").
    vote_weight: float = 0.0

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise BadInputError(f"epochs must be a whole number >= 0, got {self.epochs!r}")
        if self.epochs == 0 and not self.init_from:
            raise BadInputError("epochs: 0 keeps the model init_from names as it is; without init_from there is "
                             "nothing to keep (give epochs >= 1, or init_from)")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise BadInputError(f"unknown training option(s) {unknown}; allowed: {sorted(names)}")
        d = dict(d)
        if isinstance(d.get("augment"), dict):
            anames = {f.name for f in fields(Augment)}
            bad = sorted(set(d["augment"]) - anames)
            if bad:
                raise BadInputError(f"unknown augment option(s) {bad}; allowed: {sorted(anames)}")
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


def replace_head(model, num_classes: int, keep: list[int | None] | None = None):
    """Keep the features of ``model`` and put a fresh classifier for ``num_classes`` on top. ``keep``:
    for each new class, the index of the same class in the old classifier, whose weights the new
    one starts from (a dense classifier only), or None for a class the old one lacks (fresh weights,
    the old classifier's mean bias)."""
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
        dense = layers.Dense(num_classes, name="probs_new_dense")
        x = dense(feats)
        if keep is not None and isinstance(clf, layers.Dense) and clf.use_bias:
            w, b = clf.get_weights()
            new_w, new_b = dense.get_weights()
            for j, i in enumerate(keep):
                if i is None:
                    new_b[j] = b.mean()
                else:
                    new_w[:, j], new_b[j] = w[:, i], b[i]
            dense.set_weights([new_w, new_b])
    out = layers.Activation("softmax", name="probs_new", dtype="float32")(x)  # float32 even in mixed precision
    return keras.Model(model.input, out, name=model.name + "_finetuned")


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities at a higher temperature: softmax(log(p) / T)."""
    if temperature <= 0:
        raise BadInputError(f"soft_temperature must be > 0, got {temperature}")
    return np.asarray(apply_temperature(probs.astype(np.float64), temperature, eps=1e-12), dtype=np.float32)


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
        raise BadInputError(f"soft_weight must be in [0, 1], got {config.soft_weight}")
    from emoedge.train.masters import resolve_keras

    teacher = load_keras(resolve_keras(config.soft_targets_from))   # a file, or a shipped name: its float master
    if teacher.output_shape[-1] != k:
        raise BadInputError(f"{config.soft_targets_from}: the teacher has {teacher.output_shape[-1]} classes, "
                         f"the data {k}")
    p = (predict_probs(teacher, x_train) + predict_probs(teacher, x_train[:, :, ::-1])) / 2.0
    print(f"soft targets from {config.soft_targets_from}: the teacher agrees with "
          f"{float(np.mean(p.argmax(1) == y_train)):.1%} of the training labels; T={config.soft_temperature}, "
          f"weight {config.soft_weight}", file=sys.stderr)
    return soften(p, config.soft_temperature)


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
        if ax.lines:
            ax.legend()
        else:   # epochs: 0 (a model kept as it started)
            ax.text(0.5, 0.5, "no epoch trained", ha="center", va="center", transform=ax.transAxes)
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
    ``curves.png`` and the validation/test evaluations. Run again on the same ``out_dir``, an
    interrupted run resumes after its last finished epoch. The steps are in :mod:`emoedge.train.steps`.
    """
    if config.onednn:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
    tf_env.check_onednn(config.onednn)
    import keras

    from emoedge.train import steps

    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    failed = out / "FAILED"
    try:
        keras.utils.set_random_seed(config.seed)
        data = steps.data_splits(config, dataset, splits)
        config = steps.fit_batch_to_data(config, len(data.x_train))
        y_train = steps.targets(config, data)  # the teacher, if any, is loaded before the model is built
        model, rebuilt = steps.build_model(config, data.num_classes, dataset.class_names)
        per_epoch = steps.steps_per_epoch(config, data)
        steps.fit_batchnorm_to_data(model, per_epoch)
        fit_config = config
        if not rebuilt and config.init_from and steps.train_new_head(config, model, data, y_train):
            fit_config = replace(config, learning_rate=config.learning_rate * config.finetune_lr_scale)
            print(f"then the whole network at learning rate {fit_config.learning_rate:g} (learning_rate "
                  f"{config.learning_rate:g} x finetune_lr_scale {config.finetune_lr_scale:g})", file=sys.stderr)
        steps.compile_model(fit_config, model, per_epoch)
        tds, vds = steps.datasets(config, data, y_train)
        fitted = steps.fit(config, model, tds, vds, out, verbose)
        model, model_path = steps.export_model(config, model, rebuilt, data.num_classes, out)
        result = steps.evaluate_and_record(config, dataset, data, model, model_path, fitted, out)
    except BaseException as exc:
        # nothing half-made: a folder this run created and left empty goes; anything else is marked failed
        if created and not any(out.iterdir()):
            out.rmdir()
        else:
            failed.write_text(f"{type(exc).__name__}: {exc}\n(run again on this folder to resume, or delete it)\n")
        raise
    failed.unlink(missing_ok=True)
    return result
