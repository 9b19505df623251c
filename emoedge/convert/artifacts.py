"""Convert one Keras model to several formats of the table in ``emoedge.core.formats``.

Every artifact gets a manifest beside it. A format that cannot be made is reported with its
reason (``failed`` or ``skipped``) and leaves no file behind; the others go on.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.convert.calibration import CalibrationSet
from emoedge.convert.tflite import build_manifest, convert_keras, write_manifest
from emoedge.core.errors import ModelError
from emoedge.core.fileio import atomic_write_bytes, sha256_file
from emoedge.core.formats import FORMATS, artifact_path, get_format
from emoedge.core.preprocess import PREPROCESSING
from emoedge.core.shipped import manifest_path
from emoedge.keras.io import load_keras

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversionResult:
    format: str
    status: str                  # ok | skipped | failed
    path: Path | None
    message: str = ""
    size_bytes: int = 0

    def to_dict(self) -> dict:
        return {"format": self.format, "status": self.status, "path": None if self.path is None else str(self.path),
                "message": self.message, "size_bytes": self.size_bytes}


def _onnx_manifest(path: Path, fmt: str, class_names, source: Path, cal: CalibrationSet | None,
                   diff: float | None) -> dict:
    import onnx
    import onnxruntime
    import tf2onnx

    return {"format": "onnx", "mode": fmt, "file": path.name, "sha256": sha256_file(path),
            "size_bytes": path.stat().st_size,
            "input": {"shape": [None, 48, 48, 1], "dtype": "float32", "scale": 0.0, "zero_point": 0},
            "output": {"shape": [None, len(class_names)], "dtype": "float32", "meaning": "class probabilities"},
            "preprocessing": PREPROCESSING, "class_names": list(class_names),
            "source_model": {"file": source.name, "sha256": sha256_file(source)},
            "calibration_fingerprint": None if cal is None else cal.fingerprint,
            "max_abs_diff_vs_keras": diff,
            "versions": {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                         "onnxruntime": onnxruntime.__version__}}


def _passes_from_tflite(results: dict, onnx_path: Path) -> dict:
    """An ONNX export is the same network as the TFLite files made before it: their passes and MACs
    per face (counted on the TFLite graph). None, and said, when no TFLite file was made."""
    for r in results.values():
        if r.status == "ok" and r.path is not None and r.path.suffix == ".tflite" and manifest_path(r.path).is_file():
            m = json.loads(manifest_path(r.path).read_text())
            if "passes_per_face" in m:
                return {"passes_per_face": m["passes_per_face"], "macs_per_face": m["macs_per_face"]}
    log.warning("%s: no TFLite file of this model in this conversion to count its passes and MACs per face from; "
                "recorded as null", onnx_path)
    return {"passes_per_face": None, "macs_per_face": None}


def compile_edgetpu(uint8_path: Path, out_dir: Path) -> ConversionResult:
    """Run edgetpu_compiler when it is on PATH and keep its log; otherwise say so in one line."""
    exe = shutil.which("edgetpu_compiler")
    if exe is None:
        return ConversionResult("edgetpu", "skipped", None,
                                f"edgetpu_compiler is not on PATH; {uint8_path.name} is the Edge TPU-ready "
                                f"uint8 model to compile on a machine that has it")
    proc = subprocess.run([exe, "-s", "-o", str(out_dir), str(uint8_path)], capture_output=True, text=True)
    log = out_dir / (uint8_path.name.replace(".tflite", "") + "_edgetpu.log")
    log.write_text(proc.stdout + proc.stderr)
    compiled = out_dir / uint8_path.name.replace(".tflite", "_edgetpu.tflite")
    if proc.returncode != 0 or not compiled.is_file():
        return ConversionResult("edgetpu", "failed", None, f"edgetpu_compiler exited {proc.returncode}; see {log}")
    return ConversionResult("edgetpu", "ok", compiled, f"op mapping in {log.name}", compiled.stat().st_size)


def convert_model(model_path: str | Path, formats: Sequence[str], out_dir: str | Path,
                  class_names: Sequence[str], calibration: CalibrationSet | None = None,
                  stem: str | None = None) -> list[ConversionResult]:
    """Convert ``model_path`` (Keras) to each of ``formats`` in ``out_dir``."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    for f in formats:
        get_format(f)
    model = load_keras(model_path)
    if tuple(model.input_shape[1:]) != (48, 48, 1):
        raise ModelError(f"{model_path}: input shape {model.input_shape[1:]} is not the contract's (48, 48, 1)")
    if model.output_shape[-1] != len(class_names):
        raise ModelError(f"{model_path}: outputs {model.output_shape[-1]} classes but {len(class_names)} class "
                         f"names given: {list(class_names)}")
    stem = stem or model_path.name.split(".")[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = list(formats)
    if "edgetpu" in wanted and "uint8" not in wanted:
        wanted.insert(wanted.index("edgetpu"), "uint8")
    if "onnx-int8" in wanted and "onnx" not in wanted:
        wanted.insert(wanted.index("onnx-int8"), "onnx")
    results: dict[str, ConversionResult] = {}
    for name in wanted:
        fmt = FORMATS[name]
        path = artifact_path(out_dir, stem, name)
        if fmt.needs_calibration and calibration is None:
            results[name] = ConversionResult(name, "failed", None, "needs a calibration set (--calib)")
            continue
        try:
            if name == "keras":
                if path.resolve() != model_path.resolve():
                    atomic_write_bytes(path, model_path.read_bytes())
                res = ConversionResult(name, "ok", path, "copied", path.stat().st_size)
            elif fmt.engine == "litert":
                data = convert_keras(model, name, None if calibration is None else calibration.x)
                atomic_write_bytes(path, data)
                try:
                    write_manifest(path, build_manifest(
                        path, name, class_names, model_path,
                        calibration.fingerprint if fmt.needs_calibration else None,
                        {"calibration": calibration.describe()} if fmt.needs_calibration else None))
                except BaseException:
                    path.unlink(missing_ok=True)
                    raise
                res = ConversionResult(name, "ok", path, "", path.stat().st_size)
            elif name == "edgetpu":
                base = results.get("uint8")
                if base is None or base.status != "ok":
                    res = ConversionResult(name, "failed", None, "the uint8 model could not be made")
                else:
                    res = compile_edgetpu(base.path, out_dir)
            elif name == "onnx":
                from emoedge.convert.onnx_export import keras_to_onnx, max_abs_diff

                keras_to_onnx(model, path, class_names=class_names)
                probe = calibration.x[:64] if calibration is not None else \
                    np.random.default_rng(0).random((16, 48, 48, 1), dtype=np.float32)
                diff = max_abs_diff(model, path, probe)
                write_manifest(path, {**_onnx_manifest(path, name, class_names, model_path, None, diff),
                                      **_passes_from_tflite(results, path)})
                res = ConversionResult(name, "ok", path, f"max |onnx - keras| = {diff:.2e}", path.stat().st_size)
            elif name == "onnx-int8":
                from emoedge.convert.onnx_export import quantize_onnx_static

                base = results.get("onnx")
                if base is None or base.status != "ok":
                    res = ConversionResult(name, "failed", None, "the float ONNX model could not be made")
                else:
                    quantize_onnx_static(base.path, path, calibration.x)
                    write_manifest(path, {**_onnx_manifest(path, name, class_names, model_path, calibration, None),
                                          **_passes_from_tflite(results, path)})
                    res = ConversionResult(name, "ok", path, "", path.stat().st_size)
            else:  # pragma: no cover - the table and this function list the same formats
                raise ValueError(f"no converter for {name}")
        except (RuntimeError, ValueError, OSError, ImportError) as exc:
            path.unlink(missing_ok=True)
            manifest_path(path).unlink(missing_ok=True)
            res = ConversionResult(name, "failed", None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        results[name] = res
    return list(results.values())


def write_summary(results: list[ConversionResult], out_dir: str | Path) -> Path:
    p = Path(out_dir) / "conversion.json"
    p.write_text(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    return p
