"""The one table of model formats, used by conversion, evaluation, the runtime and benchmarks.

Each format has a name (what users type), the file suffix that a converted artifact gets
(``default`` + suffix), the engine that runs it, and what the conversion needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    engine: str               # keras | litert | onnxruntime | edgetpu | numpy | ensemble
    needs_calibration: bool
    description: str
    converted: bool = True    # made from a Keras model by `emoedge convert` (False: trained or written directly)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("keras", ".keras", "keras", False, "Keras 3 model (training, fine-tuning; needs TensorFlow)"),
    Format("float32", ".tflite", "litert", False, "TFLite, float32 weights and activations"),
    Format("float16", ".fp16.tflite", "litert", False, "TFLite, float16 weights (half the size), float compute"),
    Format("dynamic", ".dynamic.tflite", "litert", False, "TFLite, dynamic-range: int8 weights, float activations"),
    Format("int8", ".int8.tflite", "litert", True, "TFLite, full-integer int8 with int8 input/output (XNNPACK)"),
    Format("uint8", ".uint8.tflite", "litert", True, "TFLite, full-integer with uint8 input/output (Edge TPU-ready)"),
    Format("edgetpu", ".uint8_edgetpu.tflite", "edgetpu", True, "the uint8 model compiled by edgetpu_compiler"),
    Format("onnx", ".onnx", "onnxruntime", False, "ONNX via tf2onnx, float32"),
    Format("onnx-int8", ".int8.onnx", "onnxruntime", True, "ONNX with onnxruntime static QDQ int8 quantization"),
    Format("hoglbp", ".hoglbp.npz", "numpy", False, "HOG+LBP features and a linear classifier (numpy only)",
           converted=False),
    Format("ensemble", ".ensemble.json", "ensemble", False,
           "several models of these formats combined by mean, vote or stacking (edge/inference/ensemble.py)",
           converted=False),
)}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; choose one of {list(FORMATS)}") from None


def format_of(path: str | Path) -> Format:
    """The format of a model file, from its name (longest matching suffix wins)."""
    name = Path(path).name
    matches = [f for f in FORMATS.values() if name.endswith(f.suffix)]
    if not matches:
        raise ValueError(f"{path}: unknown model format; expected one of "
                         f"{sorted({f.suffix for f in FORMATS.values()})}")
    return max(matches, key=lambda f: len(f.suffix))


def artifact_path(out_dir: str | Path, stem: str, fmt: str) -> Path:
    return Path(out_dir) / f"{stem}{get_format(fmt).suffix}"


def stem_of(path: str | Path) -> str:
    """``runs/x/default.int8.tflite`` -> ``default``."""
    return Path(path).name[: -len(format_of(path).suffix)]
