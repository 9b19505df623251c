"""Detect and classify the faces of one image: the smallest whole use of the device side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emoedge.edge.detect import Face, HaarDetector
from emoedge.edge.interpreter import ModelError, TFLiteClassifier, check_classes
from emoedge.edge.models import read_manifest, resolve_model
from emoedge.edge.preprocess import preprocess_faces

UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class FacePrediction:
    face: Face
    label: str            # a class name, or "uncertain" below the confidence threshold
    confidence: float     # probability of the top class
    probs: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"box": list(self.face.box), "label": self.label, "confidence": round(self.confidence, 4),
                "probs": [round(p, 4) for p in self.probs]}


def demo_image() -> np.ndarray:
    """A real face photo that ships with matplotlib (``grace_hopper.jpg``), as BGR."""
    try:
        from matplotlib import cbook
    except ImportError as exc:
        raise RuntimeError("the demo image comes with matplotlib: pip install 'emoedge[plots]' "
                           "or give an image") from exc
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        data = np.frombuffer(fh.read(), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError("matplotlib's grace_hopper.jpg could not be decoded")
    return img


class FaceClassifier:
    """A detector, a TFLite classifier and its class names, created once."""

    def __init__(self, model_path: str | Path, class_names=None, detector=None, num_threads: int | None = None,
                 min_confidence: float = 0.0, margin: float = 0.0):
        self.model_path = Path(model_path)
        manifest = read_manifest(self.model_path) or {}
        names = class_names or manifest.get("class_names")
        if not names:
            raise ModelError(f"{self.model_path}: no class names (no manifest beside the model; pass class_names)")
        self.class_names = tuple(names)
        self.model = TFLiteClassifier(self.model_path, num_threads=num_threads)
        check_classes(self.model, self.class_names)
        self.detector = detector or HaarDetector()
        self.min_confidence = min_confidence
        self.margin = margin

    @classmethod
    def from_spec(cls, spec: str, fmt: str = "float32", **kw) -> "FaceClassifier":
        return cls(resolve_model(spec, fmt), **kw)

    def classify_faces(self, image: np.ndarray, faces: list[Face]) -> list[FacePrediction]:
        if not faces:
            return []
        probs = self.model.predict(preprocess_faces(image, [f.box for f in faces], self.margin))
        out = []
        for face, p in zip(faces, probs):
            i = int(np.argmax(p))
            conf = float(p[i])
            label = self.class_names[i] if conf >= self.min_confidence else UNCERTAIN
            out.append(FacePrediction(face, label, conf, tuple(float(v) for v in p)))
        return out

    def classify_image(self, image: np.ndarray) -> list[FacePrediction]:
        return self.classify_faces(image, self.detector.detect(image))

    @staticmethod
    def draw(image: np.ndarray, preds: list[FacePrediction]) -> np.ndarray:
        out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        for p in preds:
            x, y, w, h = p.face.box
            cv2.rectangle(out, (x, y), (x + w, y + h), (0, 200, 255), 2)
            text = f"{p.label} {p.confidence:.0%}"
            cv2.putText(out, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 255), 2)
        return out
