"""Opening any classifier file the device runs: TFLite (any dtype, CPU or Edge TPU), ONNX, HOG+LBP, or
an ensemble of those (emoedge.edge.inference.ensemble), whose members it opens itself and hands to the
ensemble."""

from __future__ import annotations

from pathlib import Path

from emoedge.core.errors import ModelError
from emoedge.core.formats import format_of
from emoedge.edge.engines.interpreter import TFLiteClassifier
from emoedge.edge.inference.ensemble import EnsembleClassifier, read_spec


def open_model(model_path: str | Path, delegate: str = "cpu", num_threads: int | None = None):
    """A TFLite (any dtype, CPU or Edge TPU), ONNX, HOG+LBP or ensemble classifier for the device."""
    path = Path(model_path)
    try:
        engine = format_of(path).engine
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    if engine == "onnxruntime":
        from emoedge.edge.engines.onnx_classifier import ONNXClassifier

        return ONNXClassifier(path, num_threads)
    if engine in ("litert", "edgetpu"):
        return TFLiteClassifier(path, "edgetpu" if engine == "edgetpu" else delegate, num_threads)
    if engine == "ensemble":
        return open_ensemble(path, delegate, num_threads)
    if engine == "numpy":
        from emoedge.edge.engines.handcrafted import HogLbpClassifier

        return HogLbpClassifier(path)
    raise ModelError(f"{path}: {engine} models are not run on the device; convert it to TFLite or ONNX")


def open_ensemble(spec_path: str | Path, delegate: str = "cpu", num_threads: int | None = None
                  ) -> EnsembleClassifier:
    """An ensemble spec (``name.ensemble.json``), read and checked, with each member opened once."""
    spec = read_spec(spec_path)
    return EnsembleClassifier(spec, [open_model(p, delegate, num_threads) for p in spec.member_paths])
