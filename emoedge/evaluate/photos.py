"""End-to-end evaluation on labelled photos, through the runtime's own code path.

A folder tree ``root/<class>/*`` of photos is run through the same objects the runtime uses: the
detector of :func:`emoedge.edge.faces.detect.make_detector` and :class:`emoedge.edge.inference.classify.FaceClassifier`
(``classify_faces``, hence ``preprocess_faces``). The largest face found in a photo is classified.

A photo where no face is found counts as wrong: its prediction is an extra ``no face`` column of
the confusion matrix, which no true class ever matches. In the macro-F1 that column is not a
class (it has no support, so it is left out of the mean), but each of its photos is a missed
photo (a false negative) of its true class and lowers that class's recall and F1.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emoedge.core.errors import BadInputError
from emoedge.core.images import read_image
from emoedge.core.preprocess import IDENTITY, CropGeometry
from emoedge.core.shipped import resolve_model
from emoedge.edge.faces.detect import Face, make_detector
from emoedge.edge.inference.classify import FaceClassifier
from emoedge.metrics import Evaluation, evaluate_predictions

log = logging.getLogger(__name__)

NO_FACE = "no face"


def pad_image(image: np.ndarray, pad: float) -> np.ndarray:
    """``pad`` x the longer side added on every side, edge pixels replicated (0: the image itself)."""
    if pad < 0:
        raise BadInputError(f"pad must be >= 0, got {pad}")
    p = int(round(pad * max(image.shape[:2])))
    if p == 0:
        return image
    return cv2.copyMakeBorder(image, p, p, p, p, cv2.BORDER_REPLICATE)


def read_photo(path: str | Path) -> np.ndarray | None:
    """A BGR image from any format OpenCV decodes, whatever the suffix says; None if unreadable or
    larger than the package's bound (emoedge.core.images; logged)."""
    try:
        return read_image(path, cv2.IMREAD_COLOR)
    except BadInputError as exc:
        log.warning("%s; skipped", exc)
        return None
    except cv2.error:
        return None


@dataclass(frozen=True)
class PhotoResult:
    path: str
    label: str                 # the true class (the folder name)
    predicted: str             # a class name, or "no face"
    confidence: float          # of the predicted class (0 without a face)
    box: tuple[int, int, int, int] | None   # the classified face in the padded photo
    n_faces: int

    def to_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "predicted": self.predicted,
                "confidence": round(self.confidence, 4), "box": list(self.box) if self.box else None,
                "n_faces": self.n_faces}


@dataclass(frozen=True)
class PhotoEvaluation:
    """Photos in, accuracy out: detection rate, accuracy over all photos (no face = wrong), accuracy on
    the photos with a face, and :class:`Evaluation` with a ``no face`` prediction column."""
    model: str
    data: str
    detector: str
    pad: float
    n_photos: int
    n_detected: int
    detection_rate: float
    accuracy: float
    accuracy_detected: float | None    # None when no face was found at all
    evaluation: Evaluation             # all photos; class_names = the model's classes + "no face"
    evaluation_detected: Evaluation | None  # the photos with a face, the model's classes only
    skipped_classes: tuple[str, ...]   # folders the model has no class for
    unreadable: tuple[str, ...]        # files OpenCV could not decode
    class_names: tuple[str, ...]       # the model's classes
    seconds: float = 0.0
    photos: tuple[PhotoResult, ...] = field(default=(), repr=False)

    @property
    def macro_f1(self) -> float:
        return self.evaluation.macro_f1

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall of the true classes (a photo without a face is a miss of its class)."""
        return self.evaluation.balanced_accuracy

    def to_dict(self, photos: bool = True) -> dict:
        d = {"model": self.model, "data": self.data, "detector": self.detector, "pad": self.pad,
             "n_photos": self.n_photos, "n_detected": self.n_detected, "detection_rate": self.detection_rate,
             "accuracy": self.accuracy, "accuracy_detected": self.accuracy_detected, "macro_f1": self.macro_f1,
             "balanced_accuracy": self.balanced_accuracy,
             "macro_f1_note": f"the '{NO_FACE}' column has no support and is not in the mean; a photo without a "
                              "face is a false negative of its true class",
             "class_names": list(self.class_names), "skipped_classes": list(self.skipped_classes),
             "n_unreadable": len(self.unreadable), "unreadable": list(self.unreadable),
             "seconds": round(self.seconds, 2),
             "evaluation": self.evaluation.to_dict(),
             "evaluation_detected": self.evaluation_detected.to_dict() if self.evaluation_detected else None}
        if photos:
            d["photos"] = [p.to_dict() for p in self.photos]
        return d

    def summary(self) -> str:
        acc_det = "-" if self.accuracy_detected is None else f"{self.accuracy_detected:.1%}"
        rows = [("photos", str(self.n_photos)),
                ("detection rate", f"{self.detection_rate:.1%} ({self.n_detected})"),
                ("accuracy", f"{self.accuracy:.1%}"),
                ("accuracy on detected", acc_det),
                ("balanced accuracy", f"{self.balanced_accuracy:.1%} (mean recall)"),
                ("macro-F1", f"{self.macro_f1:.3f}")]
        if self.skipped_classes:
            rows.append(("skipped classes", ", ".join(self.skipped_classes)))
        if self.unreadable:
            rows.append(("unreadable files", str(len(self.unreadable))))
        w = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def photo_tree(root: str | Path, class_names) -> tuple[list[tuple[Path, str]], list[str]]:
    """(photo path, class) for every file of ``root/<class>/`` the model has a class for (sorted),
    and the class folders it has not."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of photos (root/<class>/*)")
    items, skipped = [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d.name not in class_names:
            skipped.append(d.name)
            continue
        items += [(f, d.name) for f in sorted(d.iterdir()) if f.is_file() and not f.name.startswith(".")]
    return items, skipped


@dataclass(frozen=True)
class PhotoDetection:
    """The detection step's answer for one photo: the largest face (in the padded photo) or None."""
    path: str
    label: str
    box: tuple[int, int, int, int] | None
    n_faces: int


@dataclass(frozen=True)
class PhotoDetections:
    """Detection run once over a photo tree, to be shared by any number of classifiers
    (:func:`classify_photos`). ``detector`` "whole photo": every box is the unpadded photo. ``crop``:
    the detector's box -> training-crop geometry, which every classifier applies to the boxes."""
    data: str
    detector: str
    pad: float
    photos: tuple[PhotoDetection, ...]
    skipped_classes: tuple[str, ...]
    unreadable: tuple[str, ...]
    seconds: float = 0.0
    crop: CropGeometry = IDENTITY

    @property
    def n_detected(self) -> int:
        return sum(p.box is not None for p in self.photos)


WHOLE_PHOTO = "whole photo"


def detect_photos(root: str | Path, class_names, detector: str = "haar", detector_dir: str | Path | None = None,
                  pad: float = 0.0, num_threads: int | None = None, det=None) -> PhotoDetections:
    """The detection step: each photo of ``root/<class>/*`` (classes in ``class_names``) read once,
    padded, and its largest face kept. ``det``: a detector object (else :func:`make_detector`);
    ``detector`` = :data:`WHOLE_PHOTO`: no detector, the unpadded photo is the face."""
    whole = detector == WHOLE_PHOTO
    if whole:
        pad = 0.0
    elif det is None:
        det = make_detector(detector, detector_dir, num_threads)
    items, skipped = photo_tree(root, class_names)
    if not items:
        raise BadInputError(f"{root}: no photos in a folder named after a class of the model ({list(class_names)})")
    t0 = time.perf_counter()
    found, unreadable = [], []
    for path, label in items:
        img = read_photo(path)
        if img is None:
            unreadable.append(str(path))
            continue
        if whole:
            found.append(PhotoDetection(str(path), label, (0, 0, img.shape[1], img.shape[0]), 1))
            continue
        faces = det.detect(pad_image(img, pad))
        largest = max(faces, key=lambda f: f.w * f.h).box if faces else None
        found.append(PhotoDetection(str(path), label, largest, len(faces)))
    if not found:
        raise BadInputError(f"{root}: none of the {len(items)} files is a readable image")
    crop = IDENTITY if whole else getattr(det, "crop", IDENTITY)
    return PhotoDetections(str(root), detector, float(pad), tuple(found), tuple(skipped), tuple(unreadable),
                           time.perf_counter() - t0, crop)


def classify_photos(detections: PhotoDetections, classifiers: dict) -> dict[str, PhotoEvaluation]:
    """The classification step: ``classifiers`` maps a model name to ``(class_names, probs_of)``,
    ``probs_of(padded photo, box, crop geometry) -> class probabilities``. Each photo with a face is read once for
    all of them; photos of a class a model lacks are left out of its scores (skipped classes)."""
    t0 = time.perf_counter()
    results: dict[str, list[PhotoResult]] = {m: [] for m in classifiers}
    for d in detections.photos:
        wanted = [m for m, (names, _) in classifiers.items() if d.label in names]
        if not wanted:
            continue
        img = None
        if d.box is not None:
            img = read_photo(d.path)
            img = None if img is None else pad_image(img, detections.pad)
        for m in wanted:
            names, probs_of = classifiers[m]
            if img is None:
                results[m].append(PhotoResult(d.path, d.label, NO_FACE, 0.0, None, d.n_faces))
                continue
            probs = np.asarray(probs_of(img, d.box, detections.crop), dtype=np.float32).reshape(-1)
            top = int(np.argmax(probs))  # the top class even if the runtime would say "uncertain"
            results[m].append(PhotoResult(d.path, d.label, names[top], float(probs[top]), d.box, d.n_faces))
    seconds = (time.perf_counter() - t0) / max(1, len(classifiers))
    out = {}
    for m, (names, _) in classifiers.items():
        names = tuple(names)
        extra_skipped = sorted({d.label for d in detections.photos if d.label not in names})
        out[m] = _score(m, detections, names, results[m], tuple(detections.skipped_classes) + tuple(extra_skipped),
                        detections.seconds + seconds)
    return out


def _score(model: str, detections: PhotoDetections, names: tuple[str, ...], results: list[PhotoResult],
           skipped: tuple[str, ...], seconds: float) -> PhotoEvaluation:
    if not results:
        raise BadInputError(f"{detections.data}: no photo of a class of {model} ({list(names)})")
    cols = (*names, NO_FACE)
    y_true = np.array([names.index(r.label) for r in results])
    y_pred = np.array([cols.index(r.predicted) for r in results])
    ev = evaluate_predictions(y_true, y_pred, cols)
    found = y_pred < len(names)
    n_det = int(found.sum())
    ev_det = evaluate_predictions(y_true[found], y_pred[found], names) if n_det else None
    return PhotoEvaluation(
        model=model, data=detections.data, detector=detections.detector, pad=detections.pad,
        n_photos=len(results), n_detected=n_det, detection_rate=n_det / len(results), accuracy=ev.accuracy,
        accuracy_detected=ev_det.accuracy if ev_det else None, evaluation=ev, evaluation_detected=ev_det,
        skipped_classes=skipped, unreadable=detections.unreadable, class_names=names,
        seconds=seconds, photos=tuple(results))


def face_classifier_probs(clf: FaceClassifier):
    """``probs_of(image, box, crop)`` for :func:`classify_photos` through ``clf.classify_faces``
    (the runtime's path)."""
    def probs_of(image: np.ndarray, box, crop: CropGeometry) -> np.ndarray:
        return np.asarray(clf.classify_faces(image, [Face(*box)], crop)[0].probs)
    return probs_of


def evaluate_photos(model, root: str | Path, detector: str = "haar", detector_dir: str | Path | None = None,
                    pad: float = 0.0, num_threads: int | None = None, class_prior: str = "model",
                    prior_strength: float = 1.0) -> PhotoEvaluation:
    """Score ``model`` (a model file or a shipped name) end to end on the photos of ``root/<class>/*``:
    :func:`detect_photos`, then :func:`classify_photos`; the classifier under the deployment
    ``class_prior`` (:mod:`emoedge.edge.inference.prior`), as the runtime would run it."""
    model_path = resolve_model(model)
    det = make_detector(detector, detector_dir, num_threads)
    clf = FaceClassifier(model_path, detector=det, num_threads=num_threads, class_prior=class_prior,
                         prior_strength=prior_strength)
    names = clf.class_names
    dets = detect_photos(root, names, detector, pad=pad, det=clf.detector)
    return classify_photos(dets, {str(model_path): (names, face_classifier_probs(clf))})[str(model_path)]


def write_photo_evaluation(result: PhotoEvaluation, json_path: str | Path) -> dict:
    out = Path(json_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    d = result.to_dict()
    out.write_text(json.dumps(d, indent=2))
    return d
