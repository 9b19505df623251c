"""The handcrafted baseline on the device: HOG and uniform-LBP features of the 48x48 face and a
linear classifier, in numpy and OpenCV only (the very-low-power option, and the yardstick for
what the CNNs add). Models are ``.hoglbp.npz`` files: weights, bias, feature scaling, classes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emoedge.core.errors import ModelError

_HOG = None


def _hog():
    global _HOG
    if _HOG is None:  # 48x48 window, 16x16 blocks, 8x8 stride and cells, 9 bins: 900 features
        _HOG = cv2.HOGDescriptor((48, 48), (16, 16), (8, 8), (8, 8), 9)
    return _HOG


def _uniform_table() -> np.ndarray:
    """Map the 256 LBP codes to 59 bins: 58 uniform patterns (<= 2 transitions) + one for the rest."""
    table = np.full(256, 58, dtype=np.int64)
    k = 0
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        if sum(bits[i] != bits[(i + 1) % 8] for i in range(8)) <= 2:
            table[code] = k
            k += 1
    return table


_UNIFORM = _uniform_table()


def lbp_codes(gray: np.ndarray) -> np.ndarray:
    """8-neighbour LBP codes of the interior pixels of a 2-D uint8 image."""
    g = gray.astype(np.int16)
    c = g[1:-1, 1:-1]
    code = np.zeros_like(c, dtype=np.int64)
    offsets = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
    for bit, (dy, dx) in enumerate(offsets):
        nb = g[1 + dy:g.shape[0] - 1 + dy, 1 + dx:g.shape[1] - 1 + dx]
        code |= (nb >= c).astype(np.int64) << bit
    return code


def lbp_histograms(gray: np.ndarray, grid: int = 4) -> np.ndarray:
    """Uniform-LBP histograms (59 bins) over a ``grid x grid`` split of the face, normalized."""
    u = _UNIFORM[lbp_codes(gray)]
    h, w = u.shape
    out = []
    for i in range(grid):
        for j in range(grid):
            cell = u[i * h // grid:(i + 1) * h // grid, j * w // grid:(j + 1) * w // grid]
            hist = np.bincount(cell.ravel(), minlength=59).astype(np.float32)
            out.append(hist / max(1.0, hist.sum()))
    return np.concatenate(out)


def features(faces48: np.ndarray) -> np.ndarray:
    """(N, 48, 48) uint8 faces -> (N, 900 + 944) float32 HOG + LBP features."""
    faces48 = np.asarray(faces48)
    hog = _hog()
    out = np.empty((len(faces48), 900 + 16 * 59), dtype=np.float32)
    for i, f in enumerate(faces48):
        out[i, :900] = hog.compute(np.ascontiguousarray(f)).ravel()
        out[i, 900:] = lbp_histograms(f)
    return out


class HogLbpClassifier:
    """A ``.hoglbp.npz`` model behind the runtime's ``predict`` (float faces in [0, 1] -> probabilities)."""

    input_size = 48

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        try:
            with np.load(self.path, allow_pickle=False) as z:
                self.W, self.b = z["coef"].astype(np.float32), z["intercept"].astype(np.float32)
                self.mean, self.scale = z["mean"].astype(np.float32), z["scale"].astype(np.float32)
                self.class_names = tuple(str(c) for c in z["class_names"])
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{self.path}: not a HOG+LBP model file: {exc}") from exc
        self.num_classes = len(self.class_names)

    def predict(self, faces: np.ndarray, batch_size: int = 0) -> np.ndarray:
        x = np.asarray(faces)
        if x.ndim == 4:
            x = x[..., 0]
        u8 = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
        z = ((features(u8) - self.mean) / self.scale) @ self.W.T + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
