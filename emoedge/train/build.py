"""The model a run trains: from the zoo, or started from ``init_from`` (a Keras file or a shipped
model's float master: same classes, rebuilt under the training precision; other classes, a new
head), under the training precision. Keras is imported inside the functions: ``train`` sets up
oneDNN first."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoedge.core.errors import BadInputError, ModelError
from emoedge.train.heads import copy_layers_by_name, replace_head

if TYPE_CHECKING:
    from emoedge.train.config import TrainConfig


def _has_1x1_stride2_conv(model: Any) -> bool:
    """Whether ``model`` has a 1x1 convolution with a stride above 1 (oneDNN cannot train those here)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k = layer.kernel_size
            s = layer.strides
            if tuple(k) == (1, 1) and max(s) > 1:
                return True
    return False


def _source_class_names(init_from: str) -> tuple[str, ...] | None:
    """The classes of the model ``init_from`` names: a shipped model's, or the run.json beside a file."""
    from emoedge.core.shipped import MODELS_DIR, SHIPPED

    record = MODELS_DIR / f"{init_from}.run.json" if init_from in SHIPPED else Path(init_from).parent / "run.json"
    if not record.is_file():
        return None
    names = json.loads(record.read_text()).get("class_names")
    return tuple(names) if names else None


def _under_current_policy(config: TrainConfig, src: Any) -> Any:
    """``src`` rebuilt as ``config.arch`` under the current precision policy (bfloat16 compute with
    ``mixed_precision``: a loaded model keeps its saved float32 policy, ~2.6x slower to train here)
    when the weights match in shape; frozen layers stay frozen. Else ``src`` as it is."""
    import keras

    from emoedge.train import zoo

    saved = next((layer.dtype_policy.name for layer in src._flatten_layers(include_self=False) if layer.weights),
                 src.dtype_policy.name)
    if keras.mixed_precision.global_policy().name == saved:
        return src
    try:
        candidate = zoo.build(config.arch, src.output_shape[-1], **config.arch_kwargs)
    except (ValueError, TypeError, KeyError) as exc:
        print(f"init_from {config.init_from}: arch {config.arch} {config.arch_kwargs} cannot be built ({exc}); "
              f"it trains as saved ({saved})", file=sys.stderr)
        return src
    if [w.shape for w in candidate.weights] != [w.shape for w in src.weights]:
        print(f"init_from {config.init_from}: not arch {config.arch} {config.arch_kwargs}; it trains as saved "
              f"({saved})", file=sys.stderr)
        return src
    candidate.set_weights(src.get_weights())
    for a, b in zip(candidate._flatten_layers(include_self=False), src._flatten_layers(include_self=False)):
        a.trainable = b.trainable
    print(f"init_from {config.init_from}: rebuilt as {config.arch} under {keras.mixed_precision.global_policy().name} "
          f"with its weights", file=sys.stderr)
    return candidate


def _start_from(config: TrainConfig, k: int, class_names=None) -> tuple[Any, bool]:
    """The model ``config.init_from`` starts, and whether it is the zoo's ``config.arch``: with the
    same classes, ``config.arch`` rebuilt under the current precision policy with the saved weights
    (all of them, or the layers matching by name and shape); else the saved model (new head if needed)."""
    from emoedge.core.shipped import SHIPPED
    from emoedge.keras.io import load_keras
    from emoedge.train import zoo
    from emoedge.train.masters import FUSIONS, master_member

    if config.init_from in SHIPPED:
        import keras

        src = master_member(config.init_from)
        # the master's BatchNorm layers hold the folded statistics as an identity; in training mode they
        # would normalize by batch statistics instead and change what the network computes: frozen
        # (inference mode), the convolutions and dense layers train
        frozen = 0
        for layer in src._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
                frozen += 1
        print(f"init_from {config.init_from}: the shipped model's float master, rebuilt from its int8 file"
              + (" (the first member of its fusion)" if config.init_from in FUSIONS else "")
              + f"; its {frozen} BatchNorm layers frozen", file=sys.stderr)
    elif str(config.init_from).endswith((".tflite", ".onnx")):
        raise ModelError(f"{config.init_from}: init_from takes a Keras file or a shipped model's name "
                         f"({', '.join(n for n in SHIPPED if n != 'hoglbp')}), not a {Path(config.init_from).suffix} "
                         "file: a converted model cannot be trained")
    else:
        src = load_keras(config.init_from)
    if src.output_shape[-1] != k:
        src = _under_current_policy(config, src)
        old = _source_class_names(config.init_from)
        keep = None
        if old and class_names and set(class_names) & set(old) and len(old) == src.output_shape[-1]:
            keep = [old.index(c) if c in old else None for c in class_names]
        shared = [c for c, i in zip(class_names or (), keep or ()) if i is not None]
        new = [c for c, i in zip(class_names or (), keep or ()) if i is None]
        print(f"init_from {config.init_from}: {src.output_shape[-1]} classes -> {k}: its classifier is replaced by a "
              "new one for the new classes (the features are kept)"
              + (f"; the new classifier starts as its rows for {', '.join(shared)} (what it knows of them is kept)"
                 if keep else "")
              + (f"; {', '.join(new)} start fresh" if new else ""), file=sys.stderr)
        return replace_head(src, k, keep), False
    # Same classes: continue training. Rebuild config.arch under the current precision
    # policy and copy the weights (a loaded model keeps its saved float32 policy).
    candidate = zoo.build(config.arch, k, **config.arch_kwargs)
    if [w.shape for w in candidate.weights] == [w.shape for w in src.weights]:
        candidate.set_weights(src.get_weights())
        for a, b in zip(candidate._flatten_layers(include_self=False), src._flatten_layers(include_self=False)):
            a.trainable = b.trainable   # frozen layers stay frozen (a master's BatchNorm: its folded identity)
        return candidate, True
    copied, fresh = copy_layers_by_name(src, candidate)
    by_name = {layer.name: layer for layer in src.layers}
    for layer in candidate.layers:
        if layer.name in copied:
            layer.trainable = by_name[layer.name].trainable
    if copied:
        # a smaller relative (e.g. a layer dropped): seed what matches, train the rest
        print(f"init_from {config.init_from}: arch {config.arch} {config.arch_kwargs} differs; "
              f"copied {len(copied)} layers by name and shape, {len(fresh)} start fresh: "
              f"{', '.join(fresh) or '-'}", file=sys.stderr)
        return candidate, True
    print(f"init_from {config.init_from}: no layer of arch {config.arch} {config.arch_kwargs} "
          f"matches it by name and shape; training the loaded model as saved (float32)", file=sys.stderr)
    return src, False


def build_model(config: TrainConfig, num_classes: int, class_names=None) -> tuple[Any, bool]:
    """The model to train, under the training precision (bfloat16 if ``config.mixed_precision``),
    from the zoo or started from ``config.init_from``; and whether it is the zoo's ``config.arch``
    (so it can be rebuilt in float32 for export). Refuses what oneDNN cannot train."""
    import keras

    from emoedge.train import zoo

    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        if config.init_from:
            model, rebuilt = _start_from(config, num_classes, class_names)
        else:
            model, rebuilt = zoo.build(config.arch, num_classes, **config.arch_kwargs), True
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if config.onednn and _has_1x1_stride2_conv(model):
        raise BadInputError(f"{config.arch}: has 1x1 stride-2 convolutions, whose oneDNN backward pass corrupts "
                         f"the heap on this CPU; train it without --onednn")
    return model, rebuilt
