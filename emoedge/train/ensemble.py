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


def compare_members(member_paths: Sequence[str | Path], fused_path: str | Path, dataset, usage: str = "PublicTest",
                    runs: int = 200) -> list[dict]:
    """Accuracy and per-face latency (float32 TFLite, 1 thread) of each member and of the fusion."""
    import tempfile
    import time

    import numpy as np

    from emoedge.convert.tflite import convert_keras
    from emoedge.edge.interpreter import TFLiteClassifier
    from emoedge.evaluate import evaluate_model
    from emoedge.train.keras_io import load_keras

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in [*member_paths, fused_path]:
            run = evaluate_model(p, dataset, usage=usage)
            tfl = Path(tmp) / (Path(p).stem + ".tflite")
            tfl.write_bytes(convert_keras(load_keras(p), "float32"))
            clf = TFLiteClassifier(tfl, num_threads=1)
            x = np.zeros((1, 48, 48, 1), np.float32)
            for _ in range(20):
                clf.predict(x)
            t = time.perf_counter()
            for _ in range(runs):
                clf.predict(x)
            rows.append({"model": Path(p).name, "role": "ensemble" if p == fused_path else "member",
                         "accuracy": run.evaluation.accuracy, "macro_f1": run.evaluation.macro_f1,
                         "latency_ms_per_face": (time.perf_counter() - t) * 1000 / runs})
    return rows
