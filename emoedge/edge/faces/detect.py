"""Face detectors behind one interface, returning typed face records.

* ``haar``: OpenCV's frontal-face Haar cascade (ships with opencv-python).
* ``blazeface``: MediaPipe's BlazeFace short-range TFLite model on the same LiteRT interpreter
  factory as the classifier (SSD anchors decoded here, then non-maximum suppression).
* ``ssd``: OpenCV's ResNet-10 SSD face detector (TensorFlow graph run by ``cv2.dnn``).

Every detector takes a BGR or grayscale frame and an optional ``scale`` (< 1 shrinks the frame
before detection, which the latency scheduler uses); boxes come back in frame pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from emoedge.core.errors import ModelError
from emoedge.core.preprocess import CropGeometry, to_gray
from emoedge.edge.engines.interpreter import make_interpreter, tensor_info
from emoedge.edge.faces import fetch
from emoedge.edge.faces.registry import DETECTORS


@dataclass(frozen=True)
class Face:
    """A face box in frame pixels, ``(x, y, w, h)``, with the detector's score (1.0 for Haar)."""
    x: int
    y: int
    w: int
    h: int
    score: float = 1.0
    visible: float = 1.0     # share of the detector's raw box inside the frame (the box is clipped to it)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


class Detector(Protocol):
    name: str
    crop: CropGeometry      # how its boxes map to the training crop (emoedge bench crops)

    def detect(self, frame: np.ndarray, scale: float = 1.0) -> list[Face]: ...


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3) -> list[int]:
    """Greedy non-maximum suppression over ``(x, y, w, h)`` boxes (OpenCV's ``cv2.dnn.NMSBoxes``):
    indices kept, best first; a box is dropped when its IoU with a kept one is ``iou_threshold`` or more."""
    if len(boxes) == 0:
        return []
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    rank = np.empty(len(order), np.float32)      # the scores' order as positive scores (NMSBoxes wants >= 0)
    rank[order] = np.arange(len(order), 0, -1)
    # NMSBoxes keeps a box whose overlap, 1 - float32(1 - IoU), is <= its float32 threshold; dropping at
    # IoU == iou_threshold, as before, means the float32 just below that overlap (IoUs less than ~1e-7
    # under the threshold are dropped too: float32)
    at = np.float32(1) - np.float32(1 - iou_threshold)
    below = float(np.nextafter(at, np.float32(-1)))
    kept = cv2.dnn.NMSBoxes(np.asarray(boxes, np.float64).reshape(-1, 4), rank, 0.0, below)
    return [int(i) for i in np.asarray(kept, np.int64).reshape(-1)]


def drop_nested(boxes: np.ndarray, scores: np.ndarray, inside: float = 0.7) -> list[int]:
    """Indices of the boxes kept (in the given order) when a box lying mostly (``inside`` of its area)
    within a larger box is dropped: a second, smaller "face" on one face (chin, eye region)."""
    order = sorted(range(len(boxes)), key=lambda i: (-boxes[i][2] * boxes[i][3], -scores[i]))
    keep: list[int] = []
    for i in order:
        x, y, w, h = boxes[i]
        nested = False
        for j in keep:
            bx, by, bw, bh = boxes[j]
            iw = max(0.0, min(x + w, bx + bw) - max(x, bx))
            ih = max(0.0, min(y + h, by + bh) - max(y, by))
            if iw * ih >= inside * w * h:
                nested = True
                break
        if not nested:
            keep.append(i)
    return sorted(keep)


def _to_faces(boxes: np.ndarray, scores: np.ndarray, width: int, height: int, inv_scale: float) -> list[Face]:
    out = []
    for (x, y, w, h), s in zip(boxes, scores):
        x0 = max(0, int(round(x * inv_scale)))
        y0 = max(0, int(round(y * inv_scale)))
        x1 = min(width, int(round((x + w) * inv_scale)))
        y1 = min(height, int(round((y + h) * inv_scale)))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            raw = float(w * h) * inv_scale * inv_scale
            vis = min(1.0, (x1 - x0) * (y1 - y0) / raw) if raw > 0 else 0.0
            out.append(Face(x0, y0, x1 - x0, y1 - y0, float(s), round(vis, 4)))
    # a stable order (best score, then left to right, top to bottom): OpenCV's cascade returns its
    # boxes in the order its worker threads finish, so two runs on one image could list them differently
    return sorted(out, key=lambda f: (-f.score, f.x, f.y, f.w, f.h))


def _shrink(img: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return img
    w = max(1, int(round(img.shape[1] * scale)))
    h = max(1, int(round(img.shape[0] * scale)))
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


TILT_EXTRA_NEIGHBORS = 2   # neighbours a tilted Haar pass requires beyond the upright one


class HaarDetector:
    """OpenCV's frontal-face Haar cascade ``haarcascade_frontalface_alt2.xml`` (``cv2.data.haarcascades``).

    ``alt2`` rather than ``default``: on the same photos it returns the real faces only where
    ``default`` adds collars, hands and background (5 "faces" on a two-person photo); on 1,500
    validation faces shown in frames (the default model's own validation split) it finds about as
    many (1,091 vs 1,100) and runs ~20% faster. A frontal cascade misses tilted heads: when a frame
    has no upright face, it is searched again turned by ``+-tilt_deg`` (0: never) with 2 more
    neighbours required (fewer false faces: with 5, a mouth on a half-hidden face). On those
    validation faces that finds 1,229 instead of 1,091 and raises end-to-end accuracy from 51.6% to
    57.9% (``default`` cascade with the same pass: 57.6%); it costs two more passes, on frames without
    an upright face only. A box found turned is mapped back to the frame upright, around the face's
    centre.
    """

    name = "haar"
    # alt2's box is close to FER2013's crop: the fitted geometry (scale 1.035, shifts < 0.005) scored
    # 0.9 points lower end to end on validation faces than the box as it is (`emoedge bench crops`,
    # docs/benchmarks/x86-dev/crops.md), so the box is used as it is
    crop = CropGeometry()

    def __init__(self, cascade: str | Path | None = None, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: int = 30, tilt_deg: float = 20.0):
        if cascade is None:
            data = getattr(cv2, "data", None)
            if data is None:
                raise RuntimeError("this OpenCV build ships no Haar cascades (cv2.data is missing); "
                                   "install opencv-python-headless<5 or give a cascade file")
            cascade = Path(data.haarcascades) / "haarcascade_frontalface_alt2.xml"
        self.path = Path(cascade)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: Haar cascade file not found")
        self.cascade = cv2.CascadeClassifier(str(self.path))
        if self.cascade.empty():
            raise ModelError(f"{self.path}: not a loadable Haar cascade")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.tilt_deg = float(tilt_deg)

    def _run(self, gray: np.ndarray, min_size: int, extra_neighbors: int = 0) -> np.ndarray:
        found = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors + extra_neighbors,
                                              minSize=(min_size, min_size))
        return np.asarray(found, dtype=np.float64).reshape(-1, 4)

    def _tilted(self, gray: np.ndarray, min_size: int) -> np.ndarray:
        h, w = gray.shape
        for angle in (self.tilt_deg, -self.tilt_deg):
            turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            boxes = self._run(cv2.warpAffine(gray, turn, (w, h), borderMode=cv2.BORDER_REPLICATE), min_size,
                              TILT_EXTRA_NEIGHBORS)
            if len(boxes):
                back = cv2.invertAffineTransform(turn)
                centres = np.c_[boxes[:, :2] + boxes[:, 2:] / 2, np.ones(len(boxes))] @ back.T
                return np.c_[centres - boxes[:, 2:] / 2, boxes[:, 2:]]
        return np.empty((0, 4))

    def detect(self, frame: np.ndarray, scale: float = 1.0) -> list[Face]:
        gray = to_gray(frame)
        small = _shrink(gray, scale)
        min_size = max(12, int(round(self.min_size * min(1.0, scale))))
        boxes = self._run(small, min_size)
        if not len(boxes) and self.tilt_deg:
            boxes = self._tilted(small, min_size)
        if not len(boxes):
            return []
        keep = drop_nested(boxes, np.ones(len(boxes)))
        return _to_faces(boxes[keep], np.ones(len(keep)), gray.shape[1], gray.shape[0], 1.0 / min(1.0, scale))


def blazeface_anchors(input_size: int = 128, strides=(8, 16, 16, 16), offset: float = 0.5,
                      per_layer: int = 2) -> np.ndarray:
    """SSD anchor centres of MediaPipe's face detectors, ``(N, 2)`` as (x, y) in [0, 1].

    Short range (128 px, strides 8/16/16/16, 2 anchors per layer: 896); full range (192 px, one
    layer of stride 4, 1 anchor: 2,304). Layers sharing a stride are merged; anchor sizes are fixed
    (1x1), so only the centres matter.
    """
    centres = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        n_layers = 0
        while i < len(strides) and strides[i] == stride:
            n_layers += 1
            i += 1
        fm = int(np.ceil(input_size / stride))
        per_cell = per_layer * n_layers
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        c = np.stack([(xs + offset) / fm, (ys + offset) / fm], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(c, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


# MediaPipe's two face-detector variants, told apart by their input size. Crop geometry: measured by
# `emoedge bench crops` (docs/benchmarks/x86-dev/crops.md). Short range: its box is ~18% tighter than
# FER2013's crop and sits low (+3 points end to end on validation faces); full range: ~15% tighter.
BLAZEFACE_VARIANTS = {
    128: {"strides": (8, 16, 16, 16), "per_layer": 2, "range": "short (faces within ~2 m)",
          "crop": CropGeometry(scale_x=1.227, scale_y=1.227, shift_x=0.004, shift_y=-0.077)},
    192: {"strides": (4,), "per_layer": 1, "range": "full (faces within ~5 m)",
          "crop": CropGeometry(scale_x=1.168, scale_y=1.169, shift_x=0.004, shift_y=-0.041)}}


class BlazeFaceDetector:
    """MediaPipe's BlazeFace: short range (128x128 RGB in [-1, 1]; regressors (896, 16), score logits
    (896, 1); faces within ~2 m) or full range (192x192; 2,304 anchors; faces within ~5 m), told
    apart by the model's input size.

    The frame is letterboxed to a square (aspect ratio kept), so boxes map back exactly.
    """

    name = "blazeface"
    crop = BLAZEFACE_VARIANTS[128]["crop"]       # the variant's, set per model in __init__

    def __init__(self, model_path: str | Path, min_score: float = 0.5, iou_threshold: float = 0.3,
                 num_threads: int | None = None, name: str = "blazeface"):
        self.name = name
        self.path = Path(model_path)
        self.interpreter, self.choice = make_interpreter(self.path, "cpu", num_threads)
        ins = [tensor_info(d) for d in self.interpreter.get_input_details()]
        outs = [tensor_info(d) for d in self.interpreter.get_output_details()]
        if len(ins) != 1 or len(ins[0].shape) != 4 or ins[0].shape[3] != 3 or len(outs) != 2:
            raise ModelError(f"{self.path}: not a BlazeFace model (one RGB input and two outputs expected, got "
                             f"inputs {[i.shape for i in ins]}, outputs {[o.shape for o in outs]})")
        self.input = ins[0]
        self.size = self.input.shape[1]
        by_width = sorted(outs, key=lambda t: t.shape[-1])
        self.scores_t, self.boxes_t = by_width[0], by_width[-1]
        variant = BLAZEFACE_VARIANTS.get(self.size)
        if variant is None:
            raise ModelError(f"{self.path}: input {self.size}x{self.size}; BlazeFace is 128 (short range) or 192 "
                             "(full range)")
        self.anchors = blazeface_anchors(self.size, variant["strides"], per_layer=variant["per_layer"])
        self.range = variant["range"]
        self.crop = variant["crop"]
        if self.boxes_t.shape[-2] != len(self.anchors):
            raise ModelError(f"{self.path}: {self.boxes_t.shape[-2]} anchors in the model, expected "
                             f"{len(self.anchors)} (BlazeFace {self.range})")
        self.min_score = min_score
        self.iou_threshold = iou_threshold

    def detect(self, frame: np.ndarray, scale: float = 1.0) -> list[Face]:
        h, w = frame.shape[:2]
        side = max(h, w)
        if frame.ndim == 2 or frame.shape[2] == 1:
            rgb = cv2.cvtColor(to_gray(frame), cv2.COLOR_GRAY2RGB)
        else:
            rgb = cv2.cvtColor(frame[:, :, :3], cv2.COLOR_BGR2RGB)
        pad_x, pad_y = (side - w) // 2, (side - h) // 2
        square = cv2.copyMakeBorder(rgb, pad_y, side - h - pad_y, pad_x, side - w - pad_x, cv2.BORDER_CONSTANT)
        x = cv2.resize(square, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(np.float32)
        x = x * (2.0 / 255.0) - 1.0
        self.interpreter.set_tensor(self.input.index, x[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.boxes_t.index)[0]
        logits = self.interpreter.get_tensor(self.scores_t.index)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        r = raw[keep]
        cx = r[:, 0] / self.size + self.anchors[keep, 0]
        cy = r[:, 1] / self.size + self.anchors[keep, 1]
        bw = r[:, 2] / self.size
        bh = r[:, 3] / self.size
        boxes = np.stack([(cx - bw / 2) * side - pad_x, (cy - bh / 2) * side - pad_y, bw * side, bh * side], axis=1)
        order = nms(boxes, scores[keep], self.iou_threshold)
        order = [order[k] for k in drop_nested(boxes[order], scores[keep][order])]
        return _to_faces(boxes[order], scores[keep][order], w, h, 1.0)


class OpenCVSSDDetector:
    """OpenCV's ResNet-10 SSD face detector (300x300 BGR, mean (104, 177, 123)) via ``cv2.dnn``."""

    name = "ssd"
    # the squared box, grown 5% and moved down 5% of its size: measured by `emoedge bench crops`
    crop = CropGeometry(scale_x=1.054, scale_y=1.054, shift_x=-0.003, shift_y=0.051)

    def __init__(self, pb_path: str | Path, pbtxt_path: str | Path, min_score: float = 0.5,
                 input_size: int = 300):
        self.pb, self.pbtxt = Path(pb_path), Path(pbtxt_path)
        for p in (self.pb, self.pbtxt):
            if not p.is_file():
                raise ModelError(f"{p}: SSD face detector file not found (run `emoedge models fetch ssd`)")
        try:
            self.net = cv2.dnn.readNetFromTensorflow(str(self.pb), str(self.pbtxt))
        except cv2.error as exc:
            raise ModelError(f"{self.pb}: not a loadable OpenCV SSD graph: {str(exc).strip()[:200]}") from exc
        self.min_score = min_score
        self.input_size = input_size

    def detect(self, frame: np.ndarray, scale: float = 1.0) -> list[Face]:
        h, w = frame.shape[:2]
        bgr = frame if frame.ndim == 3 and frame.shape[2] == 3 else cv2.cvtColor(to_gray(frame), cv2.COLOR_GRAY2BGR)
        size = max(96, int(round(self.input_size * min(1.0, scale))))
        blob = cv2.dnn.blobFromImage(bgr, 1.0, (size, size), (104.0, 177.0, 123.0), swapRB=False, crop=False)
        self.net.setInput(blob)
        det = self.net.forward()[0, 0]
        det = det[det[:, 2] >= self.min_score]
        if not len(det):
            return []
        x1, y1, x2, y2 = (np.clip(det[:, k], 0, 1) for k in (3, 4, 5, 6))
        boxes = np.stack([x1 * w, y1 * h, (x2 - x1) * w, (y2 - y1) * h], axis=1)
        # this SSD's boxes run from forehead to chin; make them square around the centre, like the
        # Haar/BlazeFace boxes (and FER2013's crops) the classifier was trained on
        side = (boxes[:, 2] + boxes[:, 3]) / 2
        boxes = np.stack([boxes[:, 0] + boxes[:, 2] / 2 - side / 2, boxes[:, 1] + boxes[:, 3] / 2 - side / 2,
                          side, side], axis=1)
        order = nms(boxes, det[:, 2], 0.4)
        order = [order[k] for k in drop_nested(boxes[order], det[order, 2])]
        return _to_faces(boxes[order], det[order, 2], w, h, 1.0)


# How each detector of the registry (emoedge.edge.faces.registry.DETECTORS, the one list of face
# detectors) is built from its located files: (file paths, threads, min score) -> detector.
BUILDERS: dict[str, Callable[[list[Path], int | None, float], Detector]] = {
    "haar": lambda paths, threads, score: HaarDetector(),
    "blazeface": lambda paths, threads, score: BlazeFaceDetector(paths[0], min_score=score, num_threads=threads),
    "blazeface-full": lambda paths, threads, score: BlazeFaceDetector(paths[0], min_score=score, num_threads=threads,
                                                                      name="blazeface-full"),
    "ssd": lambda paths, threads, score: OpenCVSSDDetector(paths[0], paths[1], min_score=score),
}
if set(BUILDERS) != set(DETECTORS):
    raise AssertionError(f"detectors without a builder or registry entry: {sorted(set(BUILDERS) ^ set(DETECTORS))}")


def make_detector(name: str, model_dir: str | Path | None = None, num_threads: int | None = None,
                  min_score: float = 0.5) -> Detector:
    """A detector by name. BlazeFace and SSD files come from ``model_dir`` or the fetch cache."""
    try:
        kind = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose one of {tuple(DETECTORS)}") from None
    return BUILDERS[name](fetch.locate(name, model_dir) if kind.files else [], num_threads, min_score)
