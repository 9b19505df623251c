"""Model fusion into one Keras model: the average of several members' class probabilities,
optionally each also on the horizontally flipped face and on a centre crop scaled back to full
size (test-time augmentation). The result is an ordinary single-input Keras model, so conversion,
evaluation and the runtime treat it like any other (its latency is the members' summed, times
the number of views: 2 with the flip, 2 with the zoom, 4 with both)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from emoedge.train import tf_env  # noqa: F401

import keras
from keras import layers

from emoedge.train.layers import HorizontalFlip


def fuse(members: Sequence[keras.Model], flip: bool = False, name: str = "ensemble", zoom_px: int = 0) -> keras.Model:
    """``zoom_px > 0`` adds, for every view, its centre crop ``zoom_px`` pixels in from each side
    resized back (bilinear) to the input size: the face seen slightly closer."""
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
    if zoom_px:
        h, w = int(shape[0]), int(shape[1])
        if not 0 < 2 * zoom_px < min(h, w):
            raise ValueError(f"zoom_px={zoom_px} leaves nothing of a {h}x{w} face")
        crop = layers.Cropping2D(zoom_px, name="zoom_crop")
        resize = layers.Resizing(h, w, interpolation="bilinear", name="zoom_resize")
        views += [resize(crop(v)) for v in views]
    outs = []
    for i, m in enumerate(members):
        m = keras.Model(m.input, m.output, name=f"member{i}_{m.name}")  # unique names inside the ensemble
        for v in views:
            outs.append(m(v))
    out = outs[0] if len(outs) == 1 else layers.Average(name="probs")(outs)
    return keras.Model(inp, out, name=name)


def fuse_files(paths: Sequence[str | Path], out: str | Path, flip: bool = False, zoom_px: int = 0) -> Path:
    from emoedge.train.keras_io import load_keras

    model = fuse([load_keras(p) for p in paths], flip=flip, zoom_px=zoom_px)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    record = fused_run_record(paths, flip, int(model.count_params()), zoom_px)
    if record is not None and out.name == "model.keras":  # a run folder `emoedge models ship --run` takes
        import json
        import sys

        record["command"] = " ".join(sys.argv)  # the fusion's own command (lineage in the model card)

        (out.parent / "run.json").write_text(json.dumps(record, indent=2))
    return out


def fused_run_record(paths: Sequence[str | Path], flip: bool, params: int, zoom_px: int = 0) -> dict | None:
    """A training record for the fusion, from the members' run.json files (None if one is missing):
    the last member's record with the summed training time and epochs, and what was fused."""
    import json

    runs = []
    for p in paths:
        rj = Path(p).parent / "run.json"
        if not rj.is_file():
            return None
        runs.append(json.loads(rj.read_text()))
    names = {tuple(r["class_names"]) for r in runs}
    fps = {r["data"]["fingerprint_sha256"] for r in runs}
    if len(names) != 1 or len(fps) != 1:
        raise ValueError("members were trained on different data or classes; their fusion has no single record")
    rec = dict(runs[-1])
    rec["params"] = params
    # every run that went into the members, once: the members and the runs they were continued from
    spent: dict[str, dict] = {}
    for p, r in zip(paths, runs):
        spent[str(Path(p).resolve())] = r
        src = r["config"].get("init_from")
        while src and (Path(src).parent / "run.json").is_file() and str(Path(src).resolve()) not in spent:
            prev = json.loads((Path(src).parent / "run.json").read_text())
            spent[str(Path(src).resolve())] = prev
            src = prev["config"].get("init_from")
    rec["train_seconds"] = round(sum(r["train_seconds"] for r in spent.values()), 1)
    rec["epochs_run"] = sum(r["epochs_run"] for r in spent.values())
    rec["runs_included"] = sorted(spent)
    rec["members"] = [{"model": str(p), "params": r.get("params"), "epochs_run": r["epochs_run"],
                       "train_seconds": r["train_seconds"], "init_from": r["config"].get("init_from"),
                       "val_accuracy": r["val"]["accuracy"],
                       "test_accuracy": (r.get("test") or {}).get("accuracy")} for p, r in zip(paths, runs)]
    rec["fusion"] = (f"mean of the class probabilities of {len(runs)} member(s)"
                     + (", each on the face and on its mirror image" if flip else "")
                     + ((" and on" if flip else ", each on the face and on") + f" its centre crop {zoom_px} px in "
                        "from each side scaled back to full size" if zoom_px else "") + ": "
                     + "; ".join(f"`{Path(p).parent.name}/{Path(p).name}` ({r['epochs_run']} epochs, "
                                 f"val {r['val']['accuracy']:.2%})" for p, r in zip(paths, runs)))
    return rec


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
