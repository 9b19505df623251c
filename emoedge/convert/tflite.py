"""Keras -> TFLite conversion (float32, float16, dynamic-range, int8, uint8) with a manifest
beside every artifact. Imports TensorFlow: a workstation tool, not for the device."""

from __future__ import annotations

import json
import platform
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emoedge.core.errors import BadInputError, ModelError
from emoedge.core.fileio import atomic_write_bytes, sha256_file
from emoedge.core.preprocess import PREPROCESSING
from emoedge.core.shipped import manifest_path
from emoedge.edge.engines.interpreter import TFLiteClassifier
from emoedge.keras import tf_env  # noqa: F401

MODES = ("float32", "float16", "dynamic", "int8", "uint8")


def convert_keras(model, mode: str = "float32", calibration: np.ndarray | None = None) -> bytes:
    """Convert a loaded Keras model; ``calibration`` (float32 faces) is needed for int8/uint8."""
    import tensorflow as tf

    from emoedge.keras.io import as_float32

    if mode not in MODES:
        raise BadInputError(f"unknown conversion mode {mode!r}; choose one of {MODES}")
    f32 = as_float32(model)
    if f32 is not model:
        warnings.warn(f"{model.name}: has layers computing in a mixed (bfloat16/float16) policy; converted as float32 "
                      "(the TFLite converter cannot take them)", stacklevel=2)
    conv = tf.lite.TFLiteConverter.from_keras_model(f32)
    if mode == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode in ("int8", "uint8"):
        if calibration is None or len(calibration) == 0:
            raise BadInputError(f"{mode} conversion needs a representative calibration set")
        cal = np.asarray(calibration, dtype=np.float32)

        def representative():
            for i in range(len(cal)):
                yield [cal[i:i + 1]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8 if mode == "int8" else tf.uint8
        conv.inference_output_type = tf.int8 if mode == "int8" else tf.uint8
    return conv.convert()


def build_manifest(tflite_path: Path, mode: str, class_names: Sequence[str], source_path: Path | None,
                   calibration_fingerprint: str | None = None, extra: dict | None = None) -> dict:
    import tensorflow as tf

    from emoedge.core.macs import passes_per_face, tflite_macs

    clf = TFLiteClassifier(tflite_path)
    tin, tout = clf.input, clf.output
    if clf.num_classes != len(class_names):
        raise ModelError(f"{tflite_path}: outputs {clf.num_classes} classes but {len(class_names)} class names given")
    return {
        "format": "tflite", "mode": mode, "file": tflite_path.name, "sha256": sha256_file(tflite_path),
        "size_bytes": tflite_path.stat().st_size,
        "input": {"shape": list(tin.shape), "dtype": tin.dtype.name, "scale": tin.scale, "zero_point": tin.zero_point},
        "output": {"shape": list(tout.shape), "dtype": tout.dtype.name, "scale": tout.scale,
                   "zero_point": tout.zero_point, "meaning": "class probabilities (softmax)"},
        "preprocessing": PREPROCESSING,
        "class_names": list(class_names),
        "source_model": None if source_path is None else {"file": Path(source_path).name,
                                                          "sha256": sha256_file(source_path)},
        "calibration_fingerprint": calibration_fingerprint,
        # network passes per face (views x members) and multiply-accumulates per face (emoedge.core.macs)
        "passes_per_face": passes_per_face(tflite_path), "macs_per_face": tflite_macs(tflite_path),
        "versions": {"tensorflow": tf.__version__, "python": platform.python_version(), "numpy": np.__version__},
        **(extra or {}),
    }


def write_manifest(model_path: Path, manifest: dict) -> Path:
    mp = manifest_path(model_path)
    atomic_write_bytes(mp, (json.dumps(manifest, indent=2) + "\n").encode())
    return mp


def convert_file(keras_path: str | Path, out_path: str | Path, mode: str, class_names: Sequence[str],
                 calibration: np.ndarray | None = None, calibration_fingerprint: str | None = None) -> Path:
    """Convert a Keras file to TFLite at ``out_path`` and write its manifest beside it."""
    from emoedge.keras.io import load_keras

    keras_path, out_path = Path(keras_path), Path(out_path)
    model = load_keras(keras_path)
    if model.output_shape[-1] != len(class_names):
        raise ModelError(f"{keras_path}: outputs {model.output_shape[-1]} classes but {len(class_names)} "
                         f"class names given: {list(class_names)}")
    data = convert_keras(model, mode, calibration)
    atomic_write_bytes(out_path, data)
    try:
        write_manifest(out_path, build_manifest(out_path, mode, class_names, keras_path, calibration_fingerprint))
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    return out_path
