"""The one preprocessing contract: face crop -> 48x48 grayscale -> model input.

Training, calibration, evaluation and the on-device runtime all call these functions, so a
model never sees pixels prepared two different ways. Only numpy and OpenCV are used here.

The contract (recorded in every model manifest as ``PREPROCESSING``):

* the face region is cut from the frame: a detector's box ``(x, y, w, h)`` in pixels is mapped to
  the geometry of the training crops by that detector's :class:`CropGeometry` (measured, see
  ``emoedge bench crops``), optionally grown by a relative margin; parts of it outside the frame
  are filled by replicating the frame's edge pixels, so the face keeps its proportions at the
  frame's border;
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
from dataclasses import dataclass

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
    "crop": "detector box -> training-crop geometry (per detector, measured), edge pixels replicated outside the frame",
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


@dataclass(frozen=True)
class CropGeometry:
    """How a detector's box maps onto the crop the classifier was trained on (FER2013's geometry).

    The crop is ``scale_x * w`` by ``scale_y * h`` pixels, centred ``shift_x * w`` right and
    ``shift_y * h`` below the box's centre. Measured per detector by running it on training faces
    shown inside larger frames (``emoedge bench crops``); the identity for a box that already has
    the training crop's geometry (or no detector at all).
    """
    scale_x: float = 1.0
    scale_y: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def __post_init__(self):
        for k in ("scale_x", "scale_y"):
            v = getattr(self, k)
            if not 0.25 <= v <= 4.0:
                raise ValueError(f"CropGeometry.{k} must be within [0.25, 4], got {v}")
        for k in ("shift_x", "shift_y"):
            v = getattr(self, k)
            if not -1.0 <= v <= 1.0:
                raise ValueError(f"CropGeometry.{k} must be within [-1, 1], got {v}")

    def apply(self, box: Box, margin: float = 0.0) -> tuple[float, float, float, float]:
        """The training-crop box ``(x, y, w, h)`` (floats, possibly reaching outside the frame) for a
        detector box, grown by ``margin`` of its size on each side."""
        x, y, w, h = (float(v) for v in box)
        if w <= 0 or h <= 0:
            raise ValueError(f"face box must have a positive size, got {tuple(box)}")
        cx, cy = x + w * (0.5 + self.shift_x), y + h * (0.5 + self.shift_y)
        cw, ch = w * self.scale_x * (1 + 2 * margin), h * self.scale_y * (1 + 2 * margin)
        return cx - cw / 2, cy - ch / 2, cw, ch

    def to_dict(self) -> dict:
        return {"scale_x": self.scale_x, "scale_y": self.scale_y, "shift_x": self.shift_x, "shift_y": self.shift_y}


IDENTITY = CropGeometry()


def crop_region(gray: np.ndarray, box: Box, margin: float = 0.0, geometry: CropGeometry = IDENTITY) -> np.ndarray:
    """The pixels of the training-crop box of ``box`` (see :class:`CropGeometry`) from a 2-D image;
    where that box reaches outside the image, its edge pixels are replicated. A box wholly outside
    the image is a ValueError."""
    height, width = gray.shape[:2]
    x, y, w, h = geometry.apply(box, margin)
    x0, y0 = int(round(x)), int(round(y))
    x1, y1 = max(x0 + 1, int(round(x + w))), max(y0 + 1, int(round(y + h)))
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if ix1 <= ix0 or iy1 <= iy0:
        raise ValueError(f"face box {tuple(box)} lies outside the {width}x{height} frame")
    region = gray[iy0:iy1, ix0:ix1]
    if (ix0, iy0, ix1, iy1) == (x0, y0, x1, y1):
        return region
    return cv2.copyMakeBorder(region, iy0 - y0, y1 - iy1, ix0 - x0, x1 - ix1, cv2.BORDER_REPLICATE)


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
                   size: int = INPUT_SIZE, geometry: CropGeometry = IDENTITY) -> np.ndarray:
    """Crop (optional; ``box`` is a detector's box, ``geometry`` that detector's), grayscale and
    resize: the uint8 ``(size, size)`` face the model sees."""
    gray = to_gray(image)
    if box is not None:
        gray = crop_region(gray, box, margin, geometry)
    return resize_gray(gray, size)


def preprocess_face(image: np.ndarray, box: Box | None = None, margin: float = 0.0,
                    size: int = INPUT_SIZE, geometry: CropGeometry = IDENTITY) -> np.ndarray:
    """The whole contract for one face: float32 ``(size, size, 1)`` in [0, 1]."""
    return normalize(face_to_gray48(image, box, margin, size, geometry))


def preprocess_faces(image: np.ndarray, boxes: Sequence[Box], margin: float = 0.0,
                     size: int = INPUT_SIZE, geometry: CropGeometry = IDENTITY) -> np.ndarray:
    """All faces of one frame (boxes of one detector, ``geometry`` its :class:`CropGeometry`) as one
    float32 batch ``(N, size, size, 1)``."""
    gray = to_gray(image)
    out = np.empty((len(boxes), size, size, 1), dtype=np.float32)
    for i, box in enumerate(boxes):
        out[i] = normalize(resize_gray(crop_region(gray, box, margin, geometry), size))
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
