"""Any face classifier under one harness: ours (any format of the table) or an external peer
given its input size and normalization (e.g. the ``fer`` package's mini-Xception: 64x64, [-1, 1])."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emoedge.data.datasets import FER2013_CLASSES

NORMALIZATIONS = {
    "unit": lambda x: x * (1.0 / 255.0),                 # [0, 1]: this project's contract
    "signed": lambda x: x * (2.0 / 255.0) - 1.0,         # [-1, 1]: the fer package's models
    "raw": lambda x: x,                                  # [0, 255]
}


@dataclass(frozen=True)
class ClassifierSpec:
    path: str
    name: str = ""
    input_size: int = 48
    normalization: str = "unit"
    class_names: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name

    @classmethod
    def parse(cls, text: str) -> ClassifierSpec:
        """``path`` or ``path:size=64,norm=signed,name=fer``."""
        if ":" not in text or Path(text).exists():
            return cls(text)
        path, opts = text.rsplit(":", 1)
        kw: dict = {}
        for part in opts.split(","):
            k, _, v = part.partition("=")
            if k == "size":
                kw["input_size"] = int(v)
            elif k == "norm":
                kw["normalization"] = v
            elif k == "name":
                kw["name"] = v
            else:
                raise ValueError(f"{text}: unknown option {k!r} (size, norm, name)")
        return cls(path, **kw)

    def prepare(self, gray48: np.ndarray) -> np.ndarray:
        """uint8 (N, 48, 48) faces -> this classifier's float32 (N, s, s, 1) input."""
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"{self.path}: normalization must be one of {sorted(NORMALIZATIONS)}")
        g = np.asarray(gray48)
        s = self.input_size
        if g.shape[1:] != (s, s):
            g = np.stack([cv2.resize(im, (s, s), interpolation=cv2.INTER_LINEAR) for im in g]) if len(g) else \
                np.zeros((0, s, s), np.uint8)
        if self.input_size == 48 and self.normalization == "unit":
            from emoedge.core.preprocess import normalize

            return normalize(g)  # the one contract, bit for bit
        return NORMALIZATIONS[self.normalization](g.astype(np.float32))[..., None]


class _KerasRunner:
    """A Keras/HDF5 classifier called directly (``model(x)``), for a peer given as .hdf5."""

    def __init__(self, path: Path):
        from emoedge.keras.io import load_keras

        self.path = path
        self.model = load_keras(path)
        self.num_classes = int(self.model.output_shape[-1])

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        outs = [np.asarray(self.model(x[i:i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
        return np.concatenate(outs).astype(np.float32)


def open_runner(spec: ClassifierSpec, num_threads: int | None = None):
    """An object with ``predict(x)`` and ``num_classes`` for the spec's file."""
    path = Path(spec.path)
    if path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return _KerasRunner(path)
    from emoedge.edge.inference.classify import open_model

    return open_model(path, "cpu", num_threads)


def describe_engine(runner) -> str:
    """What ran the model: interpreter, delegate and threads (recorded with every result)."""
    choice = getattr(runner, "choice", None)
    if choice is not None:  # TFLite
        return (f"{choice.backend} {choice.delegate}"
                + (" + XNNPACK" if choice.backend == "litert" and choice.delegate == "cpu" else "")
                + f", {choice.num_threads or 'default'} thread(s) ({choice.reason})")
    session = getattr(runner, "session", None)
    if session is not None:  # ONNX Runtime
        return f"onnxruntime {', '.join(session.get_providers())}"
    members = getattr(runner, "members", None)
    if members is not None:  # a device ensemble
        return f"ensemble ({getattr(runner, 'method', '?')}) of: " + "; ".join(describe_engine(m) for m in members)
    if isinstance(runner, _KerasRunner):
        return "keras (TensorFlow)"
    return f"{type(runner).__name__} (numpy)"


def class_names_of(spec: ClassifierSpec) -> tuple[str, ...]:
    if spec.class_names:
        return spec.class_names
    for cand in (Path(spec.path + ".json"),):
        if cand.is_file():
            names = json.loads(cand.read_text()).get("class_names")
            if names:
                return tuple(names)
    return FER2013_CLASSES
