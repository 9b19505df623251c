"""The training targets: the one-hot labels, mixed with a dataset's crowd vote distributions (FER+)
and with a teacher's softened class probabilities (knowledge distillation)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from emoedge.core.errors import BadInputError
from emoedge.core.temperature import apply_temperature
from emoedge.train.masters import resolve_keras
from emoedge.train.predict import predict_probs

if TYPE_CHECKING:
    from emoedge.train.config import TrainConfig
    from emoedge.train.inputs import Splits


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities at a higher temperature: softmax(log(p) / T)."""
    if temperature <= 0:
        raise BadInputError(f"soft_temperature must be > 0, got {temperature}")
    return np.asarray(apply_temperature(probs.astype(np.float64), temperature, eps=1e-12), dtype=np.float32)


def teacher_targets(config: TrainConfig, x_train: np.ndarray, y_train: np.ndarray, k: int) -> np.ndarray:
    """The teacher's softened probabilities for each (un-augmented) training face, mean of face and mirror."""
    from emoedge.keras.io import load_keras

    if not 0.0 <= config.soft_weight <= 1.0:
        raise BadInputError(f"soft_weight must be in [0, 1], got {config.soft_weight}")
    teacher = load_keras(resolve_keras(config.soft_targets_from))   # a file, or a shipped name: its float master
    if teacher.output_shape[-1] != k:
        raise BadInputError(f"{config.soft_targets_from}: the teacher has {teacher.output_shape[-1]} classes, "
                         f"the data {k}")
    p = (predict_probs(teacher, x_train) + predict_probs(teacher, x_train[:, :, ::-1])) / 2.0
    print(f"soft targets from {config.soft_targets_from}: the teacher agrees with "
          f"{float(np.mean(p.argmax(1) == y_train)):.1%} of the training labels; T={config.soft_temperature}, "
          f"weight {config.soft_weight}", file=sys.stderr)
    return soften(p, config.soft_temperature)


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
