"""Each detector's box measured against the training crop (``emoedge bench crops``).

FER2013's faces are 48x48 crops of one geometry (where the chin, brow and ears fall); each face
detector draws its box with another. To give the classifier what it was trained on, the runtime
maps a detector's box to the training crop with that detector's :class:`CropGeometry`. This module
measures it, from data:

1. **fit** on training faces: each face is enlarged to a random size (96-200 px), shown in the middle
   of a frame three times as large (edges replicated, as ``--pad`` does to photos), and given to
   the detector; where the detector's largest box is centred on the face, the ratios between the
   known crop and the box (size ratio per axis, centre offset in box units) are recorded. The
   geometry is their median (robust to the odd wrong box); the interquartile range is reported.
2. **validate** on validation faces (never the training faces of the fit, never a test split),
   shown the same way at new random sizes and offsets: end-to-end accuracy of a model through
   detector -> crop -> classifier with the identity geometry, the fitted geometry and the one each
   detector ships with, beside the model's accuracy on the original crops (the ceiling).

The fitted numbers are copied into the detector classes (``crop`` in :mod:`emoedge.edge.faces.detect`);
this benchmark is the recipe that reproduces them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emoedge.benchmarks.machine import machine_info
from emoedge.core.preprocess import IDENTITY, CropGeometry, normalize, preprocess_faces
from emoedge.core.shipped import resolve_model
from emoedge.data.datasets import FaceDataset, load_dataset
from emoedge.data.splits import SPLIT_SEED, split_seed_of, standard_splits
from emoedge.edge.faces.detect import make_detector
from emoedge.edge.inference.classify import open_model
from emoedge.tables import markdown_table

SIZES_PX = (96, 200)      # the face's side in the frame: uniform in this range
CONTEXT = 1.0             # frame border on each side, in face sides


def embed_face(face: np.ndarray, side_px: int, rng: np.random.Generator,
               context: float = CONTEXT) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A 48x48 face enlarged to ``side_px`` inside a larger frame (edges replicated, the face off
    centre by up to a quarter of the border); the frame (BGR) and the face's box in it."""
    big = cv2.resize(face, (side_px, side_px), interpolation=cv2.INTER_CUBIC)
    border = int(round(context * side_px))
    dx, dy = (int(v) for v in rng.integers(-border // 4, border // 4 + 1, size=2))
    left, top = border + dx, border + dy
    frame = cv2.copyMakeBorder(big, top, 2 * border - top, left, 2 * border - left, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), (float(left), float(top), float(side_px), float(side_px))


def _on_face(box, crop) -> bool:
    """The detector's box is centred within the face's middle half (not a background box)."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    fx, fy, fs, _ = crop
    return abs(cx - (fx + fs / 2)) <= fs / 4 and abs(cy - (fy + fs / 2)) <= fs / 4


@dataclass(frozen=True)
class CropFit:
    detector: str
    n_faces: int
    n_found: int                 # faces where the detector's largest box was on the face
    geometry: CropGeometry       # the median ratios
    iqr: dict                    # interquartile range of each ratio

    def to_dict(self) -> dict:
        return {"detector": self.detector, "n_faces": self.n_faces, "n_found": self.n_found,
                "found_rate": self.n_found / max(1, self.n_faces), "geometry": self.geometry.to_dict(),
                "iqr": self.iqr}


def _shown(detector, faces: np.ndarray, seed: int):
    """Each face shown in a frame (random size and offset) and given to ``detector``: yields
    ``(index, frame, face box in the frame, the detector's largest box on the face or None)``."""
    rng = np.random.default_rng(seed)
    for i, face in enumerate(faces):
        frame, crop = embed_face(face, int(rng.integers(SIZES_PX[0], SIZES_PX[1] + 1)), rng)
        found = detector.detect(frame)
        box = max(found, key=lambda f: f.w * f.h).box if found else None
        yield i, frame, crop, (box if box is not None and _on_face(box, crop) else None)


def fit_geometry(detector, faces: np.ndarray, seed: int = 0) -> CropFit:
    """Fit ``detector``'s :class:`CropGeometry` on 48x48 training ``faces`` (see the module doc)."""
    ratios = []
    for _, _, crop, box in _shown(detector, faces, seed):
        if box is None:
            continue
        x, y, w, h = box
        fx, fy, fs, _ = crop
        ratios.append((fs / w, fs / h, (fx + fs / 2 - (x + w / 2)) / w, (fy + fs / 2 - (y + h / 2)) / h))
    if not ratios:
        raise ValueError(f"{detector.name}: found none of the {len(faces)} embedded training faces; nothing to fit")
    r = np.asarray(ratios)
    med = np.median(r, axis=0)
    q1, q3 = np.percentile(r, 25, axis=0), np.percentile(r, 75, axis=0)
    keys = ("scale_x", "scale_y", "shift_x", "shift_y")
    geom = CropGeometry(*(round(float(v), 3) for v in med))
    iqr = {k: round(float(b - a), 3) for k, a, b in zip(keys, q1, q3)}
    return CropFit(detector.name, len(faces), len(r), geom, iqr)


@dataclass(frozen=True)
class CropValidation:
    detector: str
    n_faces: int
    n_found: int
    accuracy_by_geometry: dict    # {"identity" | "fitted" | "shipped": accuracy over all faces, missed = wrong}

    def to_dict(self) -> dict:
        return {"detector": self.detector, "n_faces": self.n_faces, "n_found": self.n_found,
                "found_rate": self.n_found / max(1, self.n_faces), "accuracy": self.accuracy_by_geometry}


def validate_geometries(detector, model, faces: np.ndarray, labels: np.ndarray,
                        geometries: dict[str, CropGeometry], seed: int = 1) -> CropValidation:
    """End-to-end accuracy of ``model`` (``predict(batch) -> probs``) on ``faces`` shown in frames,
    per geometry; a face the detector misses (or a box off the face) counts as wrong."""
    correct = {k: 0 for k in geometries}
    found = 0
    for i, frame, _, box in _shown(detector, faces, seed):
        if box is None:
            continue
        label = labels[i]
        found += 1
        batch = np.concatenate([preprocess_faces(frame, [box], geometry=g) for g in geometries.values()])
        pred = np.argmax(model.predict(batch), axis=1)
        for k, p in zip(geometries, pred):
            correct[k] += int(p == label)
    n = len(faces)
    return CropValidation(detector.name, n, found, {k: c / n for k, c in correct.items()})


def model_validation_split(ds: FaceDataset, model_path: Path) -> tuple[dict, float, int]:
    """train/val/test of ``ds`` as the model's training split them (its ``<name>.run.json`` beside it:
    validation fraction and split seed; else 0.1 and the project's seed), so no validation face was
    trained on; and that fraction and seed."""
    val_fraction, split_seed = 0.1, SPLIT_SEED
    record = model_path.parent / f"{model_path.name.split('.')[0]}.run.json"
    if record.is_file():
        cfg = json.loads(record.read_text()).get("config", {})
        val_fraction, split_seed = float(cfg.get("val_fraction", val_fraction)), split_seed_of(record)
    return standard_splits(ds, val_fraction=val_fraction, seed=split_seed), val_fraction, split_seed


def bench_crops(data: str, detectors: Sequence[str], detector_dir: str | None = None, model: str = "default",
                n_fit: int = 1500, n_val: int = 1500, seed: int = 0, log=print) -> dict:
    """Fit every detector's geometry on FER2013-style training faces and validate it on validation
    faces (:func:`emoedge.data.splits.standard_splits`: val is carved from train, the test split is
    not touched). For a shipped model with a training record, val is that model's own validation
    split (its fraction and split seed), so no validation face was trained on."""
    model_path = resolve_model(model)
    parts, val_fraction, split_seed = model_validation_split(load_dataset(data), model_path)
    rng = np.random.default_rng(seed)
    train, val = parts["train"], parts["val"]
    fit_idx = rng.choice(len(train), min(n_fit, len(train)), replace=False)
    val_idx = rng.choice(len(val), min(n_val, len(val)), replace=False)
    clf = open_model(model_path)
    val_faces, val_labels = val.images[val_idx], val.labels[val_idx]
    ceiling = float(np.mean(np.argmax(clf.predict(normalize(val_faces)), axis=1) == val_labels))
    fits, checks = [], []
    t0 = time.perf_counter()
    for name in detectors:
        det = make_detector(name, detector_dir)
        fit = fit_geometry(det, train.images[fit_idx], seed)
        log(f"{name}: fitted on {fit.n_found}/{fit.n_faces} faces: {fit.geometry.to_dict()} (IQR {fit.iqr})")
        geoms = {"identity": IDENTITY, "fitted": fit.geometry, "shipped": det.crop}
        check = validate_geometries(det, clf, val_faces, val_labels, geoms, seed + 1)
        log(f"{name}: validation accuracy {({k: round(v, 4) for k, v in check.accuracy_by_geometry.items()})} "
            f"(found {check.n_found}/{check.n_faces}; original crops {ceiling:.4f})")
        fits.append(fit)
        checks.append(check)
    return {"data": str(data), "model": str(model_path.name), "n_fit": len(fit_idx), "n_val": len(val_idx),
            "seed": seed, "val_fraction": val_fraction, "split_seed": split_seed, "sizes_px": list(SIZES_PX),
            "context": CONTEXT,
            "val_accuracy_original_crops": ceiling, "fits": [f.to_dict() for f in fits],
            "validation": [c.to_dict() for c in checks], "seconds": round(time.perf_counter() - t0, 1),
            "machine": machine_info()}


def haar_variants(data: str, model: str = "default", n_val: int = 1500, seed: int = 0, log=print) -> dict:
    """End-to-end validation accuracy of the Haar choices (cascade ``default`` or ``alt2``, with or
    without the tilted pass) on the model's own validation faces, each with its box as it is and two
    enlargements: the evidence for :class:`emoedge.edge.faces.detect.HaarDetector`'s settings."""
    import cv2

    from emoedge.edge.faces.detect import HaarDetector

    model_path = resolve_model(model)
    val = model_validation_split(load_dataset(data), model_path)[0]["val"]
    idx = np.random.default_rng(seed).choice(len(val), min(n_val, len(val)), replace=False)
    clf = open_model(model_path)
    default_cascade = str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml")
    geoms = {"box": IDENTITY, "x1.035": CropGeometry(1.035, 1.035, -0.003, 0.004), "x1.08": CropGeometry(1.08, 1.08)}
    out = {}
    for name, det in [("default", HaarDetector(default_cascade, tilt_deg=0)),
                      ("default + tilt", HaarDetector(default_cascade)),
                      ("alt2", HaarDetector(tilt_deg=0)), ("alt2 + tilt", HaarDetector())]:
        v = validate_geometries(det, clf, val.images[idx], val.labels[idx], geoms, seed=seed + 1)
        out[name] = {"n_found": v.n_found, "n_faces": v.n_faces, "accuracy": v.accuracy_by_geometry}
        log(f"haar {name}: found {v.n_found}/{v.n_faces}, accuracy {v.accuracy_by_geometry}")
    return out


def write_crops(res: dict, out: str | Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "crops.json").write_text(json.dumps(res, indent=2))
    rows = []
    for f, v in zip(res["fits"], res["validation"]):
        g, q, a = f["geometry"], f["iqr"], v["accuracy"]
        rows.append([f["detector"], f"{f['n_found']}/{f['n_faces']}",
                     f"{g['scale_x']:.3f} ({q['scale_x']:.2f})", f"{g['scale_y']:.3f} ({q['scale_y']:.2f})",
                     f"{g['shift_x']:+.3f} ({q['shift_x']:.2f})", f"{g['shift_y']:+.3f} ({q['shift_y']:.2f})",
                     f"{v['found_rate']:.1%}", f"{a['identity']:.1%}", f"{a['fitted']:.1%}", f"{a['shipped']:.1%}"])
    table = markdown_table(["detector", "fit faces found", "scale x (IQR)", "scale y (IQR)", "shift x (IQR)",
                            "shift y (IQR)", "val found", "val acc, raw box", "val acc, fitted", "val acc, shipped"],
                           rows)
    command = res.get("command") or f"emoedge bench crops --data {res['data']} --model {res['model']} --out DIR"
    md = f"""# Detector boxes against the training crop

`{command}` (fit on {res['n_fit']} training faces,
validated on {res['n_val']} faces of the model's validation split (fraction {res['val_fraction']}, split seed
{res['split_seed']}: faces it was not trained on), sampling seed {res['seed']}; faces enlarged to
{res['sizes_px'][0]}-{res['sizes_px'][1]} px inside frames
with {res['context']:g} face side of replicated border on each side, off centre by up to a quarter of it).

The geometry maps a detector's box to the crop the classifier was trained on: crop = scale x box size, centred
shift x box size from the box's centre (y down). Validation accuracy counts a missed face as wrong; the model on the
original 48x48 crops scores {res['val_accuracy_original_crops']:.1%} on the same faces (the ceiling).
"shipped" is the geometry in `emoedge/edge/faces/detect.py`.

{table}
"""
    if res.get("haar_variants"):
        rows = [[k, f"{v['n_found']}/{v['n_faces']}", *(f"{a:.1%}" for a in v["accuracy"].values())]
                for k, v in res["haar_variants"].items()]
        heads = list(next(iter(res["haar_variants"].values()))["accuracy"])
        md += ("\n## Haar: which cascade, tilted pass or not\n\nEnd-to-end accuracy on the same kind of validation "
               "faces (missed = wrong), the box as it is and enlarged:\n\n"
               + markdown_table(["cascade", "found", *heads], rows) + "\n")
    (out / "crops.md").write_text(md)
