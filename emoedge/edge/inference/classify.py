"""Detect and classify the faces of one image: the smallest whole use of the device side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.core.errors import ModelError
from emoedge.core.preprocess import IDENTITY, CropGeometry, preprocess_faces
from emoedge.core.shipped import read_manifest, resolve_model
from emoedge.core.temperature import apply_temperature
from emoedge.edge.engines.interpreter import check_classes
from emoedge.edge.faces.detect import Face, HaarDetector
from emoedge.edge.faces.tracking import DEFAULT_UNCERTAIN_BELOW, UNCERTAIN
from emoedge.edge.inference.loader import open_model
from emoedge.edge.inference.prior import apply_prior, prior_shift


@dataclass(frozen=True)
class FacePrediction:
    face: Face
    label: str            # a class name, or "uncertain" below the confidence threshold
    confidence: float     # probability of the top class
    probs: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"box": list(self.face.box), "label": self.label, "confidence": round(self.confidence, 4),
                "probs": [round(p, 4) for p in self.probs]}


def check_manifest(model, manifest: dict) -> None:
    """Refuse a model whose manifest does not describe its tensors."""
    inp = manifest.get("input") or {}
    real = getattr(model, "input", None)
    if real is None or not inp:
        return
    problems = []
    if inp.get("dtype") and inp["dtype"] != real.dtype.name:
        problems.append(f"input dtype {real.dtype.name}, manifest says {inp['dtype']}")
    if inp.get("shape") and list(inp["shape"][1:]) != list(real.shape[1:]):
        problems.append(f"input shape {list(real.shape)}, manifest says {inp['shape']}")
    if real.quantized and (abs(float(inp.get("scale", 0)) - real.scale) > 1e-9 * max(1.0, real.scale)
                           or int(inp.get("zero_point", 0)) != real.zero_point):
        problems.append(f"input quantization ({real.scale}, {real.zero_point}), manifest says "
                        f"({inp.get('scale')}, {inp.get('zero_point')})")
    if problems:
        raise ModelError(f"{model.path}: the manifest does not match the model: {'; '.join(problems)}")


class FaceClassifier:
    """A detector, a classifier (TFLite or ONNX) and its class names, created once."""

    def __init__(self, model_path: str | Path, class_names=None, detector=None, num_threads: int | None = None,
                 min_confidence: float | None = 0.0, margin: float = 0.0, delegate: str = "cpu",
                 class_prior: str = "model", prior_strength: float = 1.0):
        self.model_path = Path(model_path)
        manifest = read_manifest(self.model_path) or {}
        self.model = open_model(self.model_path, delegate, num_threads)
        names = class_names or manifest.get("class_names") or getattr(self.model, "class_names", None)
        if not names:
            raise ModelError(f"{self.model_path}: no class names (no manifest beside the model; pass class_names)")
        self.class_names = tuple(names)
        check_classes(self.model, self.class_names)
        check_manifest(self.model, manifest)
        self._detector = detector
        self.margin = margin
        # temperature scaling fitted on validation data (emoedge calibrate); 1.0 = none
        self.temperature = float(manifest.get("temperature", 1.0))
        # the deployment class prior (emoedge.edge.inference.prior): a log shift per class, None for the trained mix
        self.class_prior = class_prior
        self.prior_shift = prior_shift(class_prior, manifest, self.class_names, prior_strength, str(self.model_path))
        # the `uncertain` threshold chosen on validation for this model (its manifest), else the old fixed one
        self.uncertain_below = float(manifest.get("uncertain_below", DEFAULT_UNCERTAIN_BELOW))
        # classify_faces labels a face below this `uncertain` (None: the model's own threshold)
        self.min_confidence = self.uncertain_below if min_confidence is None else float(min_confidence)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities for a batch of preprocessed faces, under the deployment prior."""
        return apply_prior(apply_temperature(self.model.predict(faces), self.temperature), self.prior_shift)

    @property
    def detector(self):
        if self._detector is None:
            self._detector = HaarDetector()
        return self._detector

    @property
    def crop(self) -> CropGeometry:
        """The detector's box -> training crop geometry (identity without a detector of our own; read
        without creating the default detector, whose boxes are used as they are)."""
        return getattr(self._detector, "crop", IDENTITY)

    @classmethod
    def from_spec(cls, spec: str, fmt: str = "int8", **kw) -> FaceClassifier:
        return cls(resolve_model(spec, fmt), **kw)

    def classify_faces(self, image: np.ndarray, faces: list[Face], crop: CropGeometry | None = None
                       ) -> list[FacePrediction]:
        """Classify ``faces`` of ``image``; ``crop``: the geometry of the detector that found them
        (default: this classifier's detector's)."""
        if not faces:
            return []
        geometry = self.crop if crop is None else crop
        probs = self.predict(preprocess_faces(image, [f.box for f in faces], self.margin, geometry=geometry))
        out = []
        for face, p in zip(faces, probs):
            i = int(np.argmax(p))
            conf = float(p[i])
            label = self.class_names[i] if conf >= self.min_confidence else UNCERTAIN
            out.append(FacePrediction(face, label, conf, tuple(float(v) for v in p)))
        return out

    def classify_image(self, image: np.ndarray) -> list[FacePrediction]:
        return self.classify_faces(image, self.detector.detect(image))
