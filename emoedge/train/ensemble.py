"""Model fusion into one Keras model: the average of several members' class probabilities,
optionally each also on the horizontally flipped face (test-time augmentation). The result is
an ordinary single-input Keras model, so conversion, evaluation and the runtime treat it like
any other (its latency is the members' summed, times two with the flip)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from emoedge.train import tf_env  # noqa: F401

import keras
from keras import layers

from emoedge.train.layers import HorizontalFlip


def fuse(members: Sequence[keras.Model], flip: bool = False, name: str = "ensemble") -> keras.Model:
    if not members:
        raise ValueError("an ensemble needs at least one member")
    shape = members[0].input_shape[1:]
    k = members[0].output_shape[-1]
    for m in members[1:]:
        if m.input_shape[1:] != shape or m.output_shape[-1] != k:
            raise ValueError(f"members disagree: {m.name} takes {m.input_shape[1:]} -> {m.output_shape[-1]}, "
                             f"{members[0].name} takes {shape} -> {k}")
    inp = keras.Input(shape, name="face")
    views = [inp]
    if flip:
        views.append(HorizontalFlip(name="hflip")(inp))
    outs = []
    for i, m in enumerate(members):
        m = keras.Model(m.input, m.output, name=f"member{i}_{m.name}")  # unique names inside the ensemble
        for v in views:
            outs.append(m(v))
    out = outs[0] if len(outs) == 1 else layers.Average(name="probs")(outs)
    return keras.Model(inp, out, name=name)


def fuse_files(paths: Sequence[str | Path], out: str | Path, flip: bool = False) -> Path:
    from emoedge.train.keras_io import load_keras

    model = fuse([load_keras(p) for p in paths], flip=flip)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return out
