"""Model fusion into one Keras model: the average of several members' class probabilities,
optionally each also on the horizontally flipped face and on a centre crop scaled back to full
size (test-time augmentation). The result is an ordinary single-input Keras model, so conversion,
evaluation and the runtime treat it like any other (its latency is the members' summed, times
the number of views: 2 with the flip, 2 with the zoom, 4 with both).

Members of one architecture can instead be averaged in weight space (:func:`average_weights`, a
stochastic weight average of snapshots of one training trajectory): one network's cost, with its
BatchNorm statistics re-estimated on training faces."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
from keras import layers

from emoedge.core.errors import BadInputError
from emoedge.keras import tf_env  # noqa: F401
from emoedge.keras.layers import HorizontalFlip, MeanOverViews, StackViews


def fuse(members: Sequence[keras.Model], flip: bool = False, name: str = "ensemble", zoom_px: int = 0,
         weights: Sequence[float] | None = None, mean: str = "probs") -> keras.Model:
    """``zoom_px > 0`` adds, for every view, its centre crop ``zoom_px`` pixels in from each side
    resized back (bilinear) to the input size: the face seen slightly closer. ``weights`` (one per
    member, default equal) weigh the members.

    ``mean="probs"`` averages the members' class probabilities; ``mean="logits"`` averages their
    scores before the softmax (each member must end in a softmax) and applies one softmax to the
    mean: a geometric mean of the probabilities, which in int8 quantizes with one rounding of the
    probabilities instead of one per member and view.

    The views are stacked along the batch axis so each member runs once on all of them: a member's
    weights then appear once in a converted TFLite graph (one call per view let the int8 converter
    store a copy per view)."""
    if not members:
        raise BadInputError("an ensemble needs at least one member")
    if mean not in ("probs", "logits"):
        raise BadInputError(f"mean must be 'probs' or 'logits', got {mean!r}")
    if weights is not None:
        weights = [float(w) for w in weights]
        if len(weights) != len(members) or min(weights) <= 0:
            raise BadInputError(f"weights {weights}: need one positive weight per member ({len(members)})")
    shape = members[0].input_shape[1:]
    k = members[0].output_shape[-1]
    for m in members[1:]:
        if m.input_shape[1:] != shape or m.output_shape[-1] != k:
            raise BadInputError(f"members disagree: {m.name} takes {m.input_shape[1:]} -> {m.output_shape[-1]}, "
                             f"{members[0].name} takes {shape} -> {k}")
    inp = keras.Input(shape, name="face")
    views = [inp]
    if flip:
        views.append(HorizontalFlip(name="hflip")(inp))
    if zoom_px:
        h, w = int(shape[0]), int(shape[1])
        if not 0 < 2 * zoom_px < min(h, w):
            raise BadInputError(f"zoom_px={zoom_px} leaves nothing of a {h}x{w} face")
        crop = layers.Cropping2D(zoom_px, name="zoom_crop")
        resize = layers.Resizing(h, w, interpolation="bilinear", name="zoom_resize")
        views += [resize(crop(v)) for v in views]
    stacked = StackViews(name="views")(views) if len(views) > 1 else inp
    equal = weights is None or len(set(weights)) == 1
    outs = []
    for i, m in enumerate(members):
        m = logits_of(m) if mean == "logits" else m
        m = keras.Model(m.input, m.output, name=f"member{i}_{m.name}")  # unique names inside the ensemble
        o = m(stacked)
        if len(views) > 1:
            o = MeanOverViews(len(views), name=f"views_mean{i}")(o)
        if not equal:  # weight / sum of weights, so the sum below is the weighted mean
            o = layers.Rescaling(weights[i] / sum(weights), name=f"w{i}")(o)
        outs.append(o)
    if len(outs) == 1:
        out = outs[0]
    elif equal:
        out = layers.Average(name="probs" if mean == "probs" else "mean_logits")(outs)
    else:
        out = layers.Add(name="probs" if mean == "probs" else "mean_logits")(outs)
    if mean == "logits":
        out = layers.Activation("softmax", name="probs")(out)
    return keras.Model(inp, out, name=name)


def logits_of(model: keras.Model) -> keras.Model:
    """``model`` without its final softmax: the scores the softmax takes. A wrapper holding one
    network (a weight average saved as a one-member fusion) is unwrapped first. A model that does
    not end in a softmax Dense or softmax Activation is refused: there are no logits to take."""
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(inner) == 1 and len(model.layers) == 2:  # Input + one network
        model = inner[0]
    last = model.layers[-1]
    act = getattr(last, "activation", None)
    if isinstance(last, layers.Dense) and getattr(act, "__name__", "") == "softmax":
        head = layers.Dense(last.units, activation=None, name=last.name + "_logits")
        out = head(last.input)
        head.set_weights(last.get_weights())
    elif isinstance(last, layers.Activation) and getattr(act, "__name__", "") == "softmax":
        out = last.input
    else:
        raise BadInputError(f"{model.name}: its last layer {last.name} ({type(last).__name__}) is not a softmax, "
                         f"so it has no logits to average; use mean='probs'")
    return keras.Model(model.input, out, name=model.name)


def average_weights(members: Sequence[keras.Model], bn_images=None, batch_size: int = 256) -> keras.Model:
    """One model whose every weight is the mean of the members' (same architecture: same layer
    names and weight shapes, e.g. snapshots of one run continued with warm restarts).

    ``bn_images`` (N x H x W x C model inputs, e.g. the training faces normalized) re-estimates each
    BatchNormalization layer's moving mean and variance as the average over batches of the averaged
    network's own statistics, with dropout off; the members' averaged statistics do not describe
    the averaged weights' activations. Without it the averaged statistics are kept."""
    import numpy as np

    if not members:
        raise BadInputError("weight averaging needs at least one member")
    ref = [(w.path, tuple(w.shape)) for w in members[0].weights]
    for m in members[1:]:
        got = [(w.path, tuple(w.shape)) for w in m.weights]
        if [s for _, s in got] != [s for _, s in ref]:
            diff = next((a, b) for a, b in zip(ref + [None] * len(got), got + [None] * len(ref)) if a != b)
            raise BadInputError(f"members differ in architecture, cannot average weights: {members[0].name} has "
                             f"{diff[0]}, {m.name} has {diff[1]}")
    avg = keras.models.clone_model(members[0])
    avg.set_weights([np.mean(np.stack(ws), axis=0).astype(ws[0].dtype)
                     for ws in zip(*[m.get_weights() for m in members])])
    if bn_images is not None and len(bn_images):
        recompute_batchnorm(avg, bn_images, batch_size)
    return avg


def recompute_batchnorm(model: keras.Model, images, batch_size: int = 256) -> int:
    """Set every BatchNormalization layer's moving statistics to the mean of its batch statistics over
    ``images`` (dropout off for the pass). Returns the number of BN layers updated."""
    bns = [layer for layer in _all_layers(model) if isinstance(layer, layers.BatchNormalization)]
    drops = [layer for layer in _all_layers(model) if isinstance(layer, layers.Dropout) or
             layer.__class__.__name__.startswith("SpatialDropout")]
    saved = ([b.momentum for b in bns], [d.rate for d in drops])
    try:
        for d in drops:
            d.rate = 0.0
        for i, start in enumerate(range(0, len(images), batch_size)):
            for b in bns:  # cumulative mean: the i-th batch gets weight 1/(i+1)
                b.momentum = 1.0 - 1.0 / (i + 1)
            model(images[start:start + batch_size], training=True)
    finally:
        for b, m in zip(bns, saved[0]):
            b.momentum = m
        for d, r in zip(drops, saved[1]):
            d.rate = r
    return len(bns)


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def splits_of(run_json: str | Path, dataset) -> dict:
    """train/val/test of ``dataset`` as the run recorded in ``run_json`` split it (its split seed and
    validation fraction), so no validation face is used for anything but validation."""
    import json

    from emoedge.data.splits import split_seed_of, standard_splits

    cfg = json.loads(Path(run_json).read_text())["config"]
    return standard_splits(dataset, val_fraction=cfg.get("val_fraction", 0.1), seed=split_seed_of(cfg))


def training_images_of(run_json: str | Path, dataset):
    """The training faces (normalized) of the run recorded in ``run_json``."""
    from emoedge.core.preprocess import normalize

    return normalize(splits_of(run_json, dataset)["train"].images)


def fuse_files(paths: Sequence[str | Path], out: str | Path, flip: bool = False, zoom_px: int = 0,
               average: bool = False, dataset=None, weights: Sequence[float] | None = None,
               mean: str = "probs") -> Path:
    """Fuse (or with ``average``, weight-average then view-fuse) the .keras ``paths`` into ``out``.
    Weight averaging re-estimates BatchNorm on the first member's training split of ``dataset``."""
    from emoedge.keras.io import load_keras

    members = [load_keras(p) for p in paths]
    bn_note = ""
    if average:
        if dataset is None:
            raise BadInputError("weight averaging needs the training data (--data) to re-estimate BatchNorm")
        if weights is not None:
            raise BadInputError("--weights weigh the members' outputs; with --average there is one network")
        rj = Path(paths[0]).parent / "run.json"
        if not rj.is_file():
            raise BadInputError(f"{rj}: missing; weight averaging takes the training split from the first member's "
                             f"run record")
        import json

        classes = json.loads(rj.read_text()).get("class_names")
        if classes and list(classes) != list(dataset.class_names):
            raise BadInputError(f"{dataset.source}: classes {list(dataset.class_names)} differ from the members' "
                             f"{classes}")
        x = training_images_of(rj, dataset)
        members = [average_weights(members, x)]
        bn_note = f"; BatchNorm statistics re-estimated on the {len(x):,} training faces"
    model = fuse(members, flip=flip, zoom_px=zoom_px, weights=weights, mean=mean)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    record = fused_run_record(paths, flip, int(model.count_params()), zoom_px, average=average, weights=weights,
                              mean=mean)
    if record is not None and bn_note:
        record["fusion"] = record["fusion"].replace(": ", bn_note + ": ", 1)
    if record is not None and dataset is not None:  # the fusion's own scores, not its last member's
        from emoedge.core.preprocess import normalize
        from emoedge.metrics import evaluate_predictions
        from emoedge.train.predict import predict_probs

        sp = splits_of(Path(paths[0]).parent / "run.json", dataset)
        for key in ("val", "test"):
            if sp.get(key) is not None and len(sp[key]):
                ev = evaluate_predictions(sp[key].labels, predict_probs(model, normalize(sp[key].images)),
                                          dataset.class_names)
                record[key] = ev.to_dict()
    if record is not None and out.name == "model.keras":  # a run folder `emoedge models ship --run` takes
        import json
        import sys

        record["command"] = " ".join(sys.argv)  # the fusion's own command (lineage in the model card)

        (out.parent / "run.json").write_text(json.dumps(record, indent=2))
    return out


def fused_run_record(paths: Sequence[str | Path], flip: bool, params: int, zoom_px: int = 0,
                     average: bool = False, weights: Sequence[float] | None = None,
                     mean: str = "probs") -> dict | None:
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
        raise BadInputError("members were trained on different data or classes; their fusion has no single record")
    rec = dict(runs[-1])
    rec["params"] = params
    # every run that went into the members, once: the members and the runs they were continued from
    spent: dict[str, dict] = {}

    def spend(p, r) -> None:
        if r.get("members"):  # a fusion: its members' runs, not its own (summed) record
            for m in r["members"]:
                rj = Path(m["model"]).parent / "run.json"
                if rj.is_file() and str(Path(m["model"]).resolve()) not in spent:
                    spend(m["model"], json.loads(rj.read_text()))
            return
        spent[str(Path(p).resolve())] = r
        src = r["config"].get("init_from")
        while src and (Path(src).parent / "run.json").is_file() and str(Path(src).resolve()) not in spent:
            prev = json.loads((Path(src).parent / "run.json").read_text())
            spent[str(Path(src).resolve())] = prev
            src = prev["config"].get("init_from")

    for p, r in zip(paths, runs):
        spend(p, r)
    rec["train_seconds"] = round(sum(r["train_seconds"] for r in spent.values()), 1)
    rec["epochs_run"] = sum(r["epochs_run"] for r in spent.values())
    rec["runs_included"] = sorted(spent)
    rec["members"] = [{"model": str(p), "params": r.get("params"), "epochs_run": r["epochs_run"],
                       "train_seconds": r["train_seconds"], "init_from": r["config"].get("init_from"),
                       "val_accuracy": r["val"]["accuracy"],
                       "test_accuracy": (r.get("test") or {}).get("accuracy")} for p, r in zip(paths, runs)]
    of = ("the scores before the softmax (softmax of the mean)" if mean == "logits"
          else "the class probabilities")
    what = (f"one network with the mean weights of {len(runs)} member(s)" if average else
            f"mean of {of} of {len(runs)} member(s)" if weights is None or len(set(weights)) == 1
            else f"weighted mean (weights {', '.join(f'{w:g}' for w in weights)}) of {of} of "
                 f"{len(runs)} members")
    each = ", on" if average else ", each on"
    rec["fusion"] = (what
                     + (f"{each} the face and on its mirror image" if flip else "")
                     + ((" and on" if flip else f"{each} the face and on") + f" its centre crop {zoom_px} px in "
                        "from each side scaled back to full size" if zoom_px else "") + ": "
                     + "; ".join(f"`{Path(p).parent.name}/{Path(p).name}` ({r['epochs_run']} epochs, "
                                 f"val {r['val']['accuracy']:.2%})" for p, r in zip(paths, runs)))
    return rec

