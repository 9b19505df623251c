"""Multiply-accumulates (MACs) of one invocation of a TFLite model, counted from its graph.

Counted: CONV_2D (out_h x out_w x out_c x k_h x k_w x in_c), DEPTHWISE_CONV_2D (out_h x out_w x
out_c x k_h x k_w), TRANSPOSE_CONV (in_h x in_w x in_c x k_h x k_w x out_c), FULLY_CONNECTED and
BATCH_MATMUL (out elements x the reduced dimension). Everything else (pooling, adds, activations,
softmax) is left out, as MAC counts usually do: it is a small share of a convolutional network's
work. The count is of the graph as stored, so a fused ensemble file counts every member and view.

Read with the interpreter's op list (LiteRT or tflite-runtime): no TensorFlow, no flatbuffer parser.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emoedge.edge.interpreter import make_interpreter

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


def tflite_macs(model_path: str | Path) -> int:
    """MACs of one invocation of the model at its stored input shape (batch 1 for the shipped models)."""
    interp, _ = make_interpreter(Path(model_path), "cpu", 1)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
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
