"""Keras training for 48x48 grayscale faces: augmentation, class balancing, early stopping,
a learning-rate schedule, best-checkpoint on validation, seeds, curves and a recorded run.

:func:`train` runs the steps of :mod:`emoedge.train.steps`; the options are
:class:`~emoedge.train.config.TrainConfig` (with :class:`~emoedge.train.augment.Augment`) and the
outcome :class:`~emoedge.train.record.TrainResult`, importable from here too."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

from emoedge.data.datasets import FaceDataset
from emoedge.keras import tf_env
from emoedge.train import steps
from emoedge.train.augment import Augment
from emoedge.train.config import TrainConfig
from emoedge.train.record import TrainResult

__all__ = ["Augment", "TrainConfig", "TrainResult", "train"]


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
