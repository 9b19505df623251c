"""Multiply-accumulates (MACs) of one invocation of a TFLite model, counted from its graph.

Counted: CONV_2D (out_h x out_w x out_c x k_h x k_w x in_c), DEPTHWISE_CONV_2D (out_h x out_w x
out_c x k_h x k_w), TRANSPOSE_CONV (in_h x in_w x in_c x k_h x k_w x out_c), FULLY_CONNECTED and
BATCH_MATMUL (out elements x the reduced dimension). Everything else (pooling, adds, activations,
softmax) is left out, as MAC counts usually do: it is a small share of a convolutional network's
work. The count is of the graph as stored, so a fused ensemble file counts every member and view.

Read with the interpreter's op list (LiteRT, else tflite-runtime) after one invocation on zeros (a
fused ensemble stacks its views as a batch at run time): no TensorFlow, no flatbuffer parser.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from emoedge.core.errors import ModelError

COUNTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL")


def op_macs(op_name: str, in_shape, weight_shape, out_shape) -> int:
    """MACs of one op from its tensor shapes (NHWC activations; TFLite's weight layouts)."""
    out = [int(v) for v in out_shape]
    w = [int(v) for v in weight_shape]
    if op_name == "CONV_2D":                    # weights [out_c, kh, kw, in_c]
        return int(np.prod(out[:-1])) * w[0] * w[1] * w[2] * w[3]
    if op_name == "DEPTHWISE_CONV_2D":          # weights [1, kh, kw, out_c]
        return int(np.prod(out)) * w[1] * w[2]
    if op_name == "TRANSPOSE_CONV":             # weights [out_c, kh, kw, in_c]; every input pixel scatters a kernel
        ins = [int(v) for v in in_shape]
        return int(np.prod(ins[:-1])) * w[0] * w[1] * w[2] * w[3]
    if op_name == "FULLY_CONNECTED":            # weights [units, depth]
        return int(np.prod(out)) * w[-1]
    if op_name == "BATCH_MATMUL":               # second operand [.., depth, n]: depth reduced
        return int(np.prod(out)) * w[-2]
    return 0


def _graph(model_path: str | Path):
    """The interpreter after one invocation on zeros, every tensor kept: a graph that stacks views
    as a batch inside (a fused ensemble) has its true shapes only once it has run."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    with warnings.catch_warnings():   # LiteRT warns that keeping every tensor costs memory: wanted here, once
        warnings.simplefilter("ignore", UserWarning)
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType

            interp = Interpreter(str(path), experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        except ImportError:
            from tflite_runtime.interpreter import Interpreter  # the fallback interpreter (see interpreter.py)

            interp = Interpreter(str(path), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    interp.invoke()
    return interp, {t["index"]: t for t in interp.get_tensor_details()}


def passes_per_face(model_path: str | Path) -> int:
    """Network passes per face (views x members): the images the graph's stem convolutions see per
    invocation. A stem is a CONV_2D or DEPTHWISE_CONV_2D whose input has the model input's channels
    and size; its input's batch is the views it runs on (a fused ensemble stacks its views as a batch).
    A graph with no such convolution counts 1."""
    interp, tensors = _graph(model_path)
    inp = interp.get_input_details()[0]["shape"]
    passes = 0
    for op in interp._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D") or not len(op["inputs"]):
            continue
        t = tensors.get(int(op["inputs"][0]))
        if t is not None and len(t["shape"]) == 4 and list(t["shape"][1:]) == list(inp[1:]):
            passes += int(t["shape"][0])
    return max(1, passes)


def tflite_macs(model_path: str | Path) -> int:
    """MACs of one invocation of the model at its stored input shape (batch 1 for the shipped models)."""
    interp, tensors = _graph(model_path)
    total = 0
    for op in interp._get_ops_details():  # the interpreters' only op listing (LiteRT and tflite-runtime)
        name = op["op_name"]
        if name not in COUNTED_OPS or len(op["inputs"]) < 2:
            continue
        inp, weight = (tensors.get(int(i)) for i in op["inputs"][:2])
        out = tensors.get(int(op["outputs"][0]))
        if name == "TRANSPOSE_CONV":            # inputs: (output shape, weights, activations)
            inp, weight = tensors.get(int(op["inputs"][2])), tensors.get(int(op["inputs"][1]))
        if inp is None or weight is None or out is None:
            continue
        total += op_macs(name, inp["shape"], weight["shape"], out["shape"])
    return total
