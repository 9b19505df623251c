"""Keras -> ONNX via tf2onnx (checked against Keras with onnxruntime), and onnxruntime static
QDQ int8 quantization from the same calibration set as the TFLite int8 model.

Like the TFLite manifest, every ONNX file records its class names and the preprocessing contract
(:data:`emoedge.core.preprocess.PREPROCESSING`), here inside the model: ``metadata_props``
``class_names`` and ``preprocessing``, each a JSON string (read back with onnxruntime's
``InferenceSession(path).get_modelmeta().custom_metadata_map``). The int8 model keeps its float
model's."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emoedge.core.fileio import atomic_write_bytes
from emoedge.core.preprocess import PREPROCESSING


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeError(f"ONNX conversion needs {module.split('.')[0]}: "
                           f"pip install 'emoedge[onnx]' ({exc})") from exc


def model_metadata(class_names: Sequence[str]) -> dict[str, str]:
    """The ``metadata_props`` of an emoedge ONNX model: class names and the preprocessing contract."""
    return {"class_names": json.dumps(list(class_names)), "preprocessing": json.dumps(PREPROCESSING)}


def _set_metadata(proto, metadata: dict[str, str]) -> None:
    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def keras_to_onnx(model, out_path: str | Path, opset: int = 17, class_names: Sequence[str] | None = None) -> Path:
    """Convert a loaded Keras model with a dynamic batch dimension; written atomically. With
    ``class_names``, the model's metadata records them and the preprocessing contract."""
    import tensorflow as tf

    tf2onnx = _require("tf2onnx")
    shape = (None,) + tuple(model.input_shape[1:])
    spec = [tf.TensorSpec(shape, tf.float32, name="face")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    if class_names is not None:
        _set_metadata(proto, model_metadata(class_names))
    out = Path(out_path)
    atomic_write_bytes(out, proto.SerializeToString())
    return out


def onnx_session(path: str | Path, num_threads: int | None = None):
    ort = _require("onnxruntime")
    opts = ort.SessionOptions()
    if num_threads:
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def max_abs_diff(model, onnx_path: str | Path, x: np.ndarray) -> float:
    """Largest absolute difference of the ONNX outputs from the Keras outputs on ``x``."""
    sess = onnx_session(onnx_path)
    name = sess.get_inputs()[0].name
    got = sess.run(None, {name: x.astype(np.float32)})[0]
    want = np.asarray(model.predict(x, verbose=0))
    return float(np.abs(got - want).max())


@contextlib.contextmanager
def _working_dir(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def quantize_onnx_static(onnx_path: str | Path, out_path: str | Path, calibration: np.ndarray) -> Path:
    """QDQ int8 (per-channel weights, int8 activations) calibrated on ``calibration``; the
    metadata of ``onnx_path`` (class names, preprocessing contract) is carried over."""
    onnx = _require("onnx")
    q = _require("onnxruntime.quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    cal = np.asarray(calibration, dtype=np.float32)

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self._it = iter(cal[i:i + 1] for i in range(len(cal)))

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"face": x}

    out = Path(out_path)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            # onnxruntime drops sym_shape_infer_temp.onnx (+ external data) in the working directory
            # when symbolic inference is incomplete: let it drop them in the temporary folder
            with _working_dir(tmp):
                quant_pre_process(str(Path(onnx_path).resolve()), str(pre), skip_symbolic_shape=False)
        except Exception as exc:  # noqa: BLE001  (onnxruntime raises a bare Exception here)
            # e.g. a Resize inside the graph (a fused model's zoom view): symbolic inference gives up;
            # ONNX's own shape inference is enough for static quantization of such a graph
            print(f"{onnx_path}: onnxruntime's symbolic shape inference failed ({exc}); pre-processing "
                  "with ONNX shape inference only (skip_symbolic_shape=True)", file=sys.stderr)
            quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
        tmp_out = Path(tmp) / "q.onnx"
        q.quantize_static(str(pre), str(tmp_out), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                          activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                          calibrate_method=q.CalibrationMethod.MinMax)
        quantized = onnx.load(str(tmp_out))
        _set_metadata(quantized, {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props})
        atomic_write_bytes(out, quantized.SerializeToString())
    return out
