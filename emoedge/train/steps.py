"""The steps of :func:`emoedge.train.trainer.train`, in the order it runs them, each from the module of
its job: the data splits and the batch (:mod:`~emoedge.train.inputs`), the training targets: crowd votes
and a teacher's soft labels (:mod:`~emoedge.train.targets`), the model: zoo, ``init_from``, precision
(:mod:`~emoedge.train.build`), the tf.data pipelines (:mod:`~emoedge.train.inputs`), the resumable fit
(:mod:`~emoedge.train.fit`), and the float32 export, the evaluation and the run record
(:mod:`~emoedge.train.record`). Keras and TensorFlow are imported inside the steps: ``train`` sets up
oneDNN first. Nothing here imports :mod:`emoedge.train.trainer`."""

from __future__ import annotations

from emoedge.train.build import build_model
from emoedge.train.fit import (
    START,
    Fitted,
    compile_model,
    fit,
    fit_batchnorm_to_data,
    score_start,
    train_new_head,
)
from emoedge.train.inputs import (
    MIN_SMALL_BATCH,
    SMALL_DATA_STEPS,
    Splits,
    data_splits,
    datasets,
    fit_batch_to_data,
    steps_per_epoch,
)
from emoedge.train.record import constant_classifier, evaluate_and_record, export_model
from emoedge.train.targets import targets

__all__ = [
    # in the order train() runs them
    "data_splits", "fit_batch_to_data", "targets", "build_model", "steps_per_epoch", "fit_batchnorm_to_data",
    "train_new_head", "compile_model", "datasets", "fit", "export_model", "evaluate_and_record",
    # what they pass on, and their settings
    "Splits", "Fitted", "START", "SMALL_DATA_STEPS", "MIN_SMALL_BATCH", "score_start", "constant_classifier",
]
