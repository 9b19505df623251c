"""One interpreter factory for TFLite models (LiteRT first, tflite_runtime as a fallback, the
Edge TPU delegate when asked for), and a face classifier on top of it.

Nothing here imports TensorFlow, and nothing probes hardware at import time: back-ends are
looked up when an interpreter is made, and the choice (and why) is recorded on the result.
"""

from __future__ import annotations

import importlib
import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.core.errors import ModelError
from emoedge.core.preprocess import dequantize, quantize

log = logging.getLogger(__name__)

EDGETPU_LIBS = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
BACKENDS = ("litert", "tflite_runtime")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.dtype.kind in "iu" and self.scale != 0


@dataclass(frozen=True)
class InterpreterChoice:
    backend: str          # litert | tflite_runtime
    delegate: str         # cpu | edgetpu
    num_threads: int
    reason: str


def _import_backend(name: str):
    """The Interpreter class and load_delegate function of a back-end, or an ImportError."""
    if name == "litert":
        mod = importlib.import_module("ai_edge_litert.interpreter")
    elif name == "tflite_runtime":
        mod = importlib.import_module("tflite_runtime.interpreter")
    else:
        raise ValueError(f"unknown TFLite back-end {name!r}; choose one of {BACKENDS}")
    return mod.Interpreter, mod.load_delegate


def make_interpreter(model_path: str | Path, delegate: str = "cpu", num_threads: int | None = None,
                     backend: str = "auto"):
    """Create and allocate a TFLite interpreter. Returns ``(interpreter, InterpreterChoice)``.

    ``backend="auto"`` takes LiteRT (``ai-edge-litert``, XNNPACK for float and int8) and falls
    back to ``tflite_runtime`` only when LiteRT is not installed, saying so in the choice.
    ``delegate="edgetpu"`` loads libedgetpu and fails clearly when it is absent.
    """
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if delegate not in ("cpu", "edgetpu"):
        raise ValueError(f"delegate must be 'cpu' or 'edgetpu', got {delegate!r}")
    errors = []
    order = BACKENDS if backend == "auto" else (backend,)
    for name in order:
        try:
            Interpreter, load_delegate = _import_backend(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        reason = "asked for" if backend != "auto" else (
            "LiteRT is installed" if name == "litert" else f"LiteRT is not installed ({errors[0]})")
        delegates = []
        if delegate == "edgetpu":
            lib = EDGETPU_LIBS.get(platform.system(), "libedgetpu.so.1")
            try:
                delegates = [load_delegate(lib)]
            except (ValueError, OSError, RuntimeError) as exc:
                raise ModelError(f"{path}: the Edge TPU delegate was asked for but {lib} could not be loaded "
                                 f"({exc}); install the Edge TPU runtime (libedgetpu1-std) and plug in the "
                                 f"accelerator, or use delegate 'cpu'") from exc
        try:
            interp = Interpreter(model_path=str(path), num_threads=num_threads,
                                 experimental_delegates=delegates or None)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a loadable TFLite model: {exc}") from exc
        return interp, InterpreterChoice(name, delegate, num_threads or 0, reason)
    raise ModelError(f"no TFLite interpreter is installed ({'; '.join(errors)}); "
                     f"pip install ai-edge-litert")


def tensor_info(detail: dict) -> TensorInfo:
    scale, zp = detail.get("quantization", (0.0, 0))
    return TensorInfo(detail["name"], detail["index"], tuple(int(v) for v in detail["shape"]),
                      np.dtype(detail["dtype"]), float(scale), int(zp))


class TFLiteClassifier:
    """Classify batches of preprocessed faces with a TFLite model of any dtype.

    The input and output quantization parameters are read from the model. Faces are given as
    the preprocessing contract's float32 ``(N, 48, 48, 1)`` in [0, 1]; the output is float32
    class probabilities ``(N, C)``. Created once; the interpreter is resized only when the
    batch size changes.
    """

    def __init__(self, model_path: str | Path, delegate: str = "cpu", num_threads: int | None = None,
                 backend: str = "auto"):
        self.path = Path(model_path)
        self.interpreter, self.choice = make_interpreter(self.path, delegate, num_threads, backend)
        ins = self.interpreter.get_input_details()
        outs = self.interpreter.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"{self.path}: expected one input and one output, got {len(ins)} and {len(outs)}")
        self.input = tensor_info(ins[0])
        self.output = tensor_info(outs[0])
        if len(self.input.shape) != 4:
            raise ModelError(f"{self.path}: input shape {self.input.shape} is not NHWC")
        self.input_size = self.input.shape[1]
        self.num_classes = self.output.shape[-1]
        self._batch = self.input.shape[0]

    def _resize(self, n: int) -> None:
        if n != self._batch:
            shape = (n,) + self.input.shape[1:]
            try:
                self.interpreter.resize_tensor_input(self.input.index, shape)
                self.interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"{self.path}: cannot run a batch of {n}: {exc}") from exc
            self._batch = n

    def predict(self, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
        x = np.asarray(faces, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        if x.shape[1:] != tuple(self.input.shape[1:]):
            raise ModelError(f"{self.path}: faces of shape {x.shape[1:]} but the model takes {self.input.shape[1:]}")
        out = np.empty((len(x), self.num_classes), dtype=np.float32)
        for i in range(0, len(x), batch_size):
            chunk = x[i:i + batch_size]
            self._resize(len(chunk))
            self.interpreter.set_tensor(self.input.index,
                                        quantize(chunk, self.input.scale, self.input.zero_point, self.input.dtype))
            self.interpreter.invoke()
            q = self.interpreter.get_tensor(self.output.index)
            out[i:i + len(chunk)] = dequantize(q, self.output.scale, self.output.zero_point)
        return out


def check_classes(model, class_names: Sequence[str]) -> None:
    if model.num_classes != len(class_names):
        raise ModelError(f"{model.path}: the model outputs {model.num_classes} classes but the class list has "
                         f"{len(class_names)}: {list(class_names)}")
