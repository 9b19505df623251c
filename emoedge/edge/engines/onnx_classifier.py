"""ONNX models behind the same ``predict`` as the TFLite classifier (onnxruntime, optional)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emoedge.core.errors import ModelError


class ONNXClassifier:
    def __init__(self, model_path: str | Path, num_threads: int | None = None):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(f"{self.path}: ONNX models need onnxruntime: pip install 'emoedge[onnx]'") from exc
        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = num_threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{self.path}: not a loadable ONNX model: {exc}") from exc
        inp = self.session.get_inputs()
        if len(inp) != 1 or len(inp[0].shape) != 4:
            raise ModelError(f"{self.path}: expected one NHWC image input, got {[i.shape for i in inp]}")
        self.input_name = inp[0].name
        self.input_size = int(inp[0].shape[1])
        self.num_classes = int(self.session.get_outputs()[0].shape[-1])

    def predict(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = np.asarray(faces, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        outs = [self.session.run(None, {self.input_name: x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)]
        return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, self.num_classes), np.float32)
