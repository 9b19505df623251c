"""Face detectors returning typed face records (Haar for now; SSD detectors join later)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emoedge.edge.preprocess import to_gray


@dataclass(frozen=True)
class Face:
    """A face box in frame pixels, ``(x, y, w, h)``, with the detector's score (1.0 for Haar)."""
    x: int
    y: int
    w: int
    h: int
    score: float = 1.0

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (shipped by opencv-python in ``cv2.data.haarcascades``)."""

    name = "haar"

    def __init__(self, cascade: str | Path | None = None, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: int = 30):
        if cascade is None:
            data = getattr(cv2, "data", None)
            if data is None:
                raise RuntimeError("this OpenCV build ships no Haar cascades (cv2.data is missing); "
                                   "install opencv-python-headless<5 or give a cascade file")
            cascade = Path(data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.path = Path(cascade)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: Haar cascade file not found")
        self.cascade = cv2.CascadeClassifier(str(self.path))
        if self.cascade.empty():
            raise ValueError(f"{self.path}: not a loadable Haar cascade")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, frame: np.ndarray) -> list[Face]:
        gray = to_gray(frame)
        found = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(self.min_size, self.min_size))
        return [Face(int(x), int(y), int(w), int(h)) for (x, y, w, h) in (found if len(found) else [])]
