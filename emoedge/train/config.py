"""The options of a training run (:class:`TrainConfig`, with its :class:`~emoedge.train.augment.Augment`).
TensorFlow is not imported here: a config is read (and ``onednn`` known) before it loads."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from emoedge.core.errors import BadInputError
from emoedge.data.splits import SPLIT_SEED
from emoedge.train.augment import Augment


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
