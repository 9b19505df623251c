"""Float masters of the shipped models, available by name (``init_from=default``, ``--model default@keras``).

The original float Keras files were kept on a machine that is gone (the cards say so), and their
lineage took 283 minutes of training. They are rebuilt here from the shipped int8 TFLite files,
which carry every weight: each convolution's and dense layer's int8 weights and int32 bias are
dequantized with the scales stored in the file (per channel), and loaded into the recorded
architecture (``<name>.run.json``). The converter had folded each BatchNormalization into the layer
before it, so the rebuilt layers hold the folded weights and their BatchNormalization layers start
as the identity (gamma 1, mean 0, variance 1 - epsilon, beta = the folded bias): the same function
in float, trainable again. What it changes: the weights are the int8 ones (rounding of ~0.4% of a
channel's range), so the rebuilt float model agrees with the int8 file, not with the lost original
(accuracy per model: ``docs/models/masters.md``; ``emoedge evaluate --model NAME --format keras``).
The ``default`` is a fusion: its two members are
rebuilt the same way and fused again with the recorded options (mirror, 2 px centre zoom, weights
1 : 0.5, mean of the scores).

Nothing is stored in the repository for this (0 MB): the int8 file is the source.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from emoedge.core.errors import ModelError
from emoedge.core.shipped import MODELS_DIR, SHIPPED

# how the default's two members were fused (its card, step 6: emoedge ensemble A B --weights 1,0.5
# --mean logits --flip --zoom 2); the member with weight 1 is the first
FUSIONS = {"default": {"flip": True, "zoom_px": 2, "weights": (1.0, 0.5), "mean": "logits"}}
CHAIN_OPS = ("CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED")


def _interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def _dequantized(it, details: dict, index: int) -> np.ndarray:
    q = it.get_tensor(index)
    qp = details[index]["quantization_parameters"]
    scales, zps = np.asarray(qp["scales"], np.float64), np.asarray(qp["zero_points"], np.float64)
    if q.dtype.kind == "f":
        return q.astype(np.float32)
    if scales.size == 0:
        raise ModelError(f"tensor {details[index]['name']}: integer weights without quantization parameters")
    shape = [1] * q.ndim
    if scales.size > 1:
        shape[qp["quantized_dimension"]] = -1
    return ((q.astype(np.float64) - zps.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def member_weights(tflite_path: str | Path) -> list[list[tuple[str, np.ndarray, np.ndarray]]]:
    """The weighted layers of each network in an int8 TFLite file, in order: per network (a chain of
    convolutions, pools, a reshape and dense layers starting at a convolution fed by something else),
    ``(op, kernel in Keras layout, bias)`` for every CONV_2D and FULLY_CONNECTED."""
    path = Path(tflite_path)
    it = _interpreter(path)
    details = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    producer = {int(o): op["index"] for op in ops for o in op["outputs"]}
    consumers: dict[int, list[dict]] = {}
    for op in ops:
        for t in op["inputs"]:
            if t >= 0:
                consumers.setdefault(int(t), []).append(op)
    def starts_a_network(op) -> bool:   # a convolution not fed by the chain ops (the input, the views)
        src = int(op["inputs"][0])
        return op["op_name"] == "CONV_2D" and (src not in producer or ops[producer[src]]["op_name"] not in CHAIN_OPS)

    heads = [op for op in ops if starts_a_network(op)]
    nets = []
    for head in heads:
        layers, op = [], head
        while op is not None:
            if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
                w = _dequantized(it, details, int(op["inputs"][1]))
                b = (_dequantized(it, details, int(op["inputs"][2])) if len(op["inputs"]) > 2 and op["inputs"][2] >= 0
                     else np.zeros(w.shape[0], np.float32))
                kernel = np.transpose(w, (1, 2, 3, 0)) if op["op_name"] == "CONV_2D" else w.T
                layers.append((op["op_name"], kernel, b))
            if op["op_name"] == "FULLY_CONNECTED" and sum(x[0] == "FULLY_CONNECTED" for x in layers) == 2:
                break
            nxt = [c for c in consumers.get(int(op["outputs"][0]), []) if c["op_name"] in CHAIN_OPS]
            op = nxt[0] if len(nxt) == 1 else None
        nets.append(layers)
    if not nets:
        raise ModelError(f"{path}: no convolutional network found to rebuild")
    return nets


def load_into(model, layers: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Put one network's folded weights into a zoo model of the same architecture: each Conv2D (no
    bias) + BatchNormalization pair gets the kernel and an identity BN whose beta is the bias; the
    dense ``fc`` + ``fc_bn`` likewise; the last dense layer takes its kernel and bias."""
    import keras

    convs = [la for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    denses = [la for la in model.layers if isinstance(la, keras.layers.Dense)]
    src_convs = [x for x in layers if x[0] == "CONV_2D"]
    src_denses = [x for x in layers if x[0] == "FULLY_CONNECTED"]
    if len(convs) != len(src_convs) or len(denses) != len(src_denses):
        raise ModelError(f"{model.name}: {len(convs)} conv / {len(denses)} dense layers, the int8 file has "
                         f"{len(src_convs)} / {len(src_denses)}: not the recorded architecture")
    by_name = {la.name: la for la in model.layers}

    def put(layer, kernel, bias):
        if tuple(layer.kernel.shape) != kernel.shape:
            raise ModelError(f"{layer.name}: kernel {tuple(layer.kernel.shape)}, the int8 file has {kernel.shape}")
        if layer.use_bias:
            layer.set_weights([kernel, bias])
            return
        layer.set_weights([kernel])
        bn = by_name.get(layer.name.replace("_conv", "_bn") if layer.name.endswith("_conv") else layer.name + "_bn")
        if bn is None:
            raise ModelError(f"{layer.name}: no bias and no BatchNormalization after it to hold the folded bias")
        ones = np.ones_like(bias)
        bn.set_weights([ones, bias, np.zeros_like(bias), ones * (1.0 - bn.epsilon)])

    for layer, (_, k, b) in zip(convs + denses, src_convs + src_denses):
        put(layer, k, b)


def weights_sha256(model) -> str:
    """sha256 over a model's weights (float32 bytes, in order): the same for every rebuild."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return h.hexdigest()


def rebuild_master(name: str):
    """The float Keras master of a shipped model, rebuilt from its int8 file (see the module doc)."""
    from emoedge.keras.io import as_float32
    from emoedge.train import zoo
    from emoedge.train.fusion import fuse

    if name not in SHIPPED or name == "hoglbp":
        raise ModelError(f"{name!r}: no float master (shipped neural networks: "
                         f"{[n for n in SHIPPED if n != 'hoglbp']})")
    tfl = MODELS_DIR / f"{name}.int8.tflite"
    record = MODELS_DIR / f"{name}.run.json"
    if not tfl.is_file() or not record.is_file():
        raise ModelError(f"{tfl}: the int8 file and its training record are needed to rebuild the float master")
    run = json.loads(record.read_text())
    cfg, k = run["config"], len(run["class_names"])
    nets = member_weights(tfl)
    members = []
    for layers in nets:
        m = zoo.build(cfg["arch"], k, **cfg["arch_kwargs"])
        load_into(m, layers)
        members.append(m)
    fusion = FUSIONS.get(name)
    if fusion is None:
        if len(members) != 1:
            raise ModelError(f"{tfl}: {len(members)} networks but no recorded fusion for {name}")
        return as_float32(members[0])
    if len(members) != len(fusion["weights"]):
        raise ModelError(f"{tfl}: {len(members)} networks, the recorded fusion has {len(fusion['weights'])}")
    return as_float32(fuse(members, flip=fusion["flip"], zoom_px=fusion["zoom_px"], weights=fusion["weights"],
                           mean=fusion["mean"], name=f"{name}_master"))


def master_member(name: str):
    """The network to fine-tune from for a shipped name: the master itself, or for a fusion its first
    (highest-weighted) member."""
    from emoedge.train import zoo

    if name not in FUSIONS:
        return rebuild_master(name)
    run = json.loads((MODELS_DIR / f"{name}.run.json").read_text())
    cfg = run["config"]
    m = zoo.build(cfg["arch"], len(run["class_names"]), **cfg["arch_kwargs"])
    load_into(m, member_weights(MODELS_DIR / f"{name}.int8.tflite")[0])
    return m


def master_path(name: str, cache: str | Path | None = None) -> Path:
    """The float master of a shipped model as a ``.keras`` file (rebuilt once into the cache,
    ``$EMOEDGE_MODELS/masters`` or ``~/.cache/emoedge/models/masters``, and again whenever the int8
    file changes), with a manifest beside it: class names, the int8 file's sha256, the weights' sha256."""
    from emoedge.core.fileio import sha256_file
    from emoedge.core.preprocess import PREPROCESSING
    from emoedge.core.shipped import manifest_path
    from emoedge.edge.faces.fetch import cache_dir

    folder = Path(cache) if cache else cache_dir() / "masters"
    out = folder / f"{name}.keras"
    tfl = MODELS_DIR / f"{name}.int8.tflite"
    if not tfl.is_file():
        raise ModelError(f"{name!r}: no shipped int8 file to rebuild a float master from ({tfl})")
    source_sha = sha256_file(tfl)
    mp = manifest_path(out)
    if out.is_file() and mp.is_file() and json.loads(mp.read_text()).get("rebuilt_from_sha256") == source_sha:
        return out
    model = rebuild_master(name)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(out)
    run = json.loads((MODELS_DIR / f"{name}.run.json").read_text())
    mp.write_text(json.dumps({
        "format": "keras", "class_names": run["class_names"], "preprocessing": PREPROCESSING,
        "rebuilt_from": tfl.name, "rebuilt_from_sha256": source_sha, "weights_sha256": weights_sha256(model),
        "how": "int8 weights dequantized with their stored scales into the recorded architecture; BatchNorm "
               "folded (identity BN layers); see emoedge.train.masters"}, indent=2))
    return out


def resolve_keras(spec: str | Path) -> Path:
    """A Keras model file, or a shipped name (``default``, ``default@keras``): its float master's file."""
    s = str(spec)
    name = s[:-len("@keras")] if s.endswith("@keras") else s
    if name in SHIPPED and not Path(s).exists():
        return master_path(name)
    return Path(s)
