"""The one preprocessing contract: face crop -> 48x48 grayscale -> model input.

Training, calibration, evaluation and the on-device runtime all call these functions, so a
model never sees pixels prepared two different ways. Only numpy and OpenCV are used here.

The contract (recorded in every model manifest as ``PREPROCESSING``):

* the face region is cut from the frame (a box ``(x, y, w, h)`` in pixels, optionally grown
  by a relative margin and clipped to the frame);
* it is turned into one grayscale channel (BGR/BGRA/RGB-agnostic luma via OpenCV's
  BGR weights; a single-channel frame, e.g. the Y plane of a YUV420 stream, is used as is);
* it is resized to ``size x size`` (48 by default) with area interpolation when shrinking and
  bilinear when enlarging;
* pixels become float32 in [0, 1] (``x / 255``), shaped ``(size, size, 1)``.

Quantized models take the same float values through their own input scale and zero point,
read from the model (see :func:`quantize`), never assumed.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

INPUT_SIZE = 48
PREPROCESSING = {
    "name": "gray48-unit",
    "input_size": INPUT_SIZE,
    "channels": 1,
    "color": "grayscale (OpenCV BGR2GRAY weights; single-channel input used as is)",
    "resize": "INTER_AREA when shrinking, INTER_LINEAR when enlarging",
    "scale": "x / 255 -> float32 in [0, 1]",
    "layout": "NHWC",
}

Box = Sequence[int]


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a 2-D uint8 grayscale view/copy of ``image`` (H,W), (H,W,1), (H,W,3) or (H,W,4)."""
    img = np.asarray(image)
    if img.ndim == 2:
        gray = img
    elif img.ndim == 3 and img.shape[2] == 1:
        gray = img[:, :, 0]
    elif img.ndim == 3 and img.shape[2] == 3:
        gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY)
    elif img.ndim == 3 and img.shape[2] == 4:
        gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGRA2GRAY)
    else:
        raise ValueError(f"expected an image of shape (H,W), (H,W,1), (H,W,3) or (H,W,4), got {img.shape}")
    if gray.dtype != np.uint8:
        if np.issubdtype(gray.dtype, np.floating) and gray.size and float(gray.max()) <= 1.0:
            gray = gray * 255.0
        gray = np.clip(gray, 0, 255).astype(np.uint8)
    return gray


def clip_box(box: Box, width: int, height: int, margin: float = 0.0) -> tuple[int, int, int, int]:
    """Grow ``(x, y, w, h)`` by ``margin`` (a fraction of its size on each side) and clip it."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"face box must have a positive size, got {tuple(box)}")
    x -= w * margin
    y -= h * margin
    w *= 1 + 2 * margin
    h *= 1 + 2 * margin
    x0 = int(max(0, round(x)))
    y0 = int(max(0, round(y)))
    x1 = int(min(width, round(x + w)))
    y1 = int(min(height, round(y + h)))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {tuple(box)} lies outside the {width}x{height} frame")
    return x0, y0, x1 - x0, y1 - y0


def resize_gray(gray: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Resize a 2-D grayscale image to ``size x size`` with the contract's interpolation."""
    if gray.shape == (size, size):
        return gray
    shrinking = gray.shape[0] >= size and gray.shape[1] >= size
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interp)


def normalize(gray: np.ndarray) -> np.ndarray:
    """uint8 grayscale (..., H, W) -> float32 (..., H, W, 1) in [0, 1]."""
    arr = np.asarray(gray)
    if arr.dtype != np.uint8:
        raise TypeError(f"normalize expects uint8 pixels, got {arr.dtype}")
    return (arr.astype(np.float32) * (1.0 / 255.0))[..., None]


def face_to_gray48(image: np.ndarray, box: Box | None = None, margin: float = 0.0,
                   size: int = INPUT_SIZE) -> np.ndarray:
    """Crop (optional), grayscale and resize: the uint8 ``(size, size)`` face the model sees."""
    gray = to_gray(image)
    if box is not None:
        x, y, w, h = clip_box(box, gray.shape[1], gray.shape[0], margin)
        gray = gray[y:y + h, x:x + w]
    return resize_gray(gray, size)


def preprocess_face(image: np.ndarray, box: Box | None = None, margin: float = 0.0,
                    size: int = INPUT_SIZE) -> np.ndarray:
    """The whole contract for one face: float32 ``(size, size, 1)`` in [0, 1]."""
    return normalize(face_to_gray48(image, box, margin, size))


def preprocess_faces(image: np.ndarray, boxes: Sequence[Box], margin: float = 0.0,
                     size: int = INPUT_SIZE) -> np.ndarray:
    """All faces of one frame as one float32 batch ``(N, size, size, 1)``."""
    gray = to_gray(image)
    out = np.empty((len(boxes), size, size, 1), dtype=np.float32)
    for i, box in enumerate(boxes):
        out[i] = preprocess_face(gray, box, margin, size)
    return out


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Map float model input to an integer input tensor with the model's own parameters."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return x.astype(dtype, copy=False)
    if scale == 0:
        raise ValueError("quantized input tensor has scale 0: the model carries no quantization parameters")
    info = np.iinfo(dtype)
    q = np.round(x / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer output tensor -> float32 with the model's own parameters (floats pass through)."""
    if q.dtype.kind == "f":
        return q.astype(np.float32, copy=False)
    return (q.astype(np.float32) - zero_point) * scale
