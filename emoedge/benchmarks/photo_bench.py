"""End-to-end accuracy on labelled photos across models and detectors (``emoedge bench photos``).

For every (model or peer) x detector: detection rate, accuracy (no face = wrong), accuracy on the
photos with a face and macro-F1, through :mod:`emoedge.evaluate.photos`. Detection runs once per
(detector, photo) and its largest box is shared by every model, so the table costs one detection
pass per detector plus one classification per model per photo. A "whole photo" column per model
is the baseline: the unpadded photo (the photos are tight face crops) resized as the face.

Our models take the face through the runtime's own path (``FaceClassifier.classify_faces``: the
detector's box mapped to the training crop by its ``CropGeometry``, INTER_AREA, [0, 1]). A peer
(:class:`ClassifierSpec`) gets the same box cut with its own crop convention; ``fer`` (the default,
:func:`fer_crop`) is the fer package's
``FER.detect_emotions``: the box squared on its longer side, grown by 10 px on every side, the
frame padded by 40 black pixels, then ``cv2.resize`` (bilinear) to the peer's size and the peer's
normalization. ``ours``: the box as our models see it, resized to the peer's size.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from emoedge.benchmarks.classifiers import NORMALIZATIONS, ClassifierSpec, class_names_of, describe_engine, open_runner
from emoedge.benchmarks.machine import machine_info
from emoedge.core.preprocess import IDENTITY, CropGeometry, face_to_gray48, to_gray
from emoedge.core.shipped import resolve_model
from emoedge.edge.faces.detect import make_detector
from emoedge.edge.inference.classify import FaceClassifier
from emoedge.evaluate.photos import WHOLE_PHOTO, PhotoEvaluation, classify_photos, detect_photos, face_classifier_probs
from emoedge.tables import markdown_table

PEER_CROPS = ("fer", "ours")
FER_OFFSET = 10    # px added on every side of the squared box (fer's default offsets)
FER_BORDER = 40    # px of black added around the frame (fer's PADDING)


def fer_crop(image: np.ndarray, box, size: int = 64) -> np.ndarray:
    """The fer package's face crop: uint8 gray ``(size, size)``."""
    gray = to_gray(image)
    x, y, w, h = (int(v) for v in box)
    if h > w:
        d = h - w
        x -= d // 2
        w += d
    elif w > h:
        d = w - h
        y -= d // 2
        h += d
    b = FER_BORDER
    g = cv2.copyMakeBorder(gray, b, b, b, b, cv2.BORDER_CONSTANT, value=0)
    x1, x2 = max(0, x - FER_OFFSET + b), x + w + FER_OFFSET + b
    y1, y2 = max(0, y - FER_OFFSET + b), y + h + FER_OFFSET + b
    return cv2.resize(g[y1:y2, x1:x2], (size, size))


def peer_probs(spec: ClassifierSpec, runner, crop: str = "fer") -> Callable:
    """``probs_of(image, box)`` for a peer: its crop (``fer`` or ``ours``), size and normalization.
    A box covering the whole image (the whole-photo baseline) is the image resized, in both."""
    if crop not in PEER_CROPS:
        raise ValueError(f"peer crop must be one of {PEER_CROPS}, got {crop!r}")
    if spec.normalization not in NORMALIZATIONS:
        raise ValueError(f"{spec.path}: normalization must be one of {sorted(NORMALIZATIONS)}")
    s = spec.input_size

    def probs_of(image: np.ndarray, box, geometry: CropGeometry = IDENTITY) -> np.ndarray:
        whole = tuple(box) == (0, 0, image.shape[1], image.shape[0])
        if whole:
            face = cv2.resize(to_gray(image), (s, s))
        elif crop == "fer":
            face = fer_crop(image, box, s)     # fer's own convention, whatever the detector
        else:
            face = face_to_gray48(image, box, size=s, geometry=geometry)
        x = NORMALIZATIONS[spec.normalization](face.astype(np.float32))[None, ..., None]
        return np.asarray(runner.predict(x))[0]
    return probs_of


def _row(name: str, kind: str, ev: PhotoEvaluation) -> dict:
    per_class = {c.name: round(c.f1, 4) for c in ev.evaluation.per_class if c.support > 0}
    return {"model": name, "kind": kind, "detector": ev.detector, "n_photos": ev.n_photos,
            "n_detected": ev.n_detected, "detection_rate": ev.detection_rate, "accuracy": ev.accuracy,
            "accuracy_detected": ev.accuracy_detected, "macro_f1": ev.macro_f1,
            "balanced_accuracy": ev.balanced_accuracy, "per_class_f1": per_class,
            "skipped_classes": list(ev.skipped_classes)}


def bench_photos(data: str | Path, models: Sequence[str] = (), peers: Sequence[ClassifierSpec] = (),
                 detectors: Sequence[str] = ("haar",), detector_dir: str | Path | None = None, pad: float = 0.5,
                 num_threads: int | None = None, peer_crop: str = "fer",
                 log: Callable[[str], None] | None = None) -> dict:
    """The photos benchmark as a JSON-ready dict: ``rows`` (one per model x detector, and per model
    on the whole photo), ``detection`` (per detector: photos, faces found, seconds) and ``failed``."""
    log = log or (lambda m: None)
    classifiers: dict[str, tuple] = {}
    about, failed = [], []
    for m in dict.fromkeys(models):   # a model named twice runs once
        try:
            path = resolve_model(m)
            clf = FaceClassifier(path, num_threads=num_threads)
        except Exception as e:  # noqa: BLE001 - a model that does not load is a failed row, not the end
            failed.append({"model": m, "detector": None, "reason": f"{type(e).__name__}: {e}"})
            continue
        classifiers[m] = (clf.class_names, face_classifier_probs(clf))
        about.append({"name": m, "kind": "model", "file": str(path), "engine": describe_engine(clf.model),
                      "crop": "ours (runtime: the detector's box mapped to the training crop, INTER_AREA, "
                              "48x48, [0, 1])"})
    for spec in peers:
        try:
            runner = open_runner(spec, num_threads)
            names = class_names_of(spec)
            if getattr(runner, "num_classes", len(names)) != len(names):
                raise ValueError(f"{runner.num_classes} outputs but {len(names)} class names")
            probs_of = peer_probs(spec, runner, peer_crop)
        except Exception as e:  # noqa: BLE001
            failed.append({"model": spec.label, "detector": None, "reason": f"{type(e).__name__}: {e}"})
            continue
        classifiers[spec.label] = (names, probs_of)
        about.append({"name": spec.label, "kind": "peer", "file": spec.path, "engine": describe_engine(runner),
                      "input_size": spec.input_size, "normalization": spec.normalization,
                      "crop": peer_crop + (" (squared box + 10 px, 40 px black border, bilinear)"
                                           if peer_crop == "fer" else " (our crop at the peer's size)")})
    if not classifiers:
        raise ValueError("no model or peer could be loaded: " + "; ".join(f["reason"] for f in failed))
    kinds = {a["name"]: a["kind"] for a in about}
    union = sorted({c for names, _ in classifiers.values() for c in names})
    rows, detection = [], {}
    for det_name in [*detectors, WHOLE_PHOTO]:
        t0 = time.perf_counter()
        try:
            det = None if det_name == WHOLE_PHOTO else make_detector(det_name, detector_dir, num_threads)
            dets = detect_photos(data, union, det_name, pad=pad, det=det)
        except Exception as e:  # noqa: BLE001 - a detector that does not load fails its column only
            failed.append({"model": None, "detector": det_name, "reason": f"{type(e).__name__}: {e}"})
            log(f"{det_name}: failed ({e})")
            continue
        detection[det_name] = {"n_photos": len(dets.photos), "n_detected": dets.n_detected,
                               "pad": dets.pad, "seconds": round(dets.seconds, 2),
                               "n_unreadable": len(dets.unreadable), "skipped_classes": list(dets.skipped_classes)}
        evs = classify_photos(dets, classifiers)
        for name, ev in evs.items():
            rows.append(_row(name, kinds[name], ev))
        log(f"{det_name}: {dets.n_detected}/{len(dets.photos)} faces, "
            + ", ".join(f"{n} {e.accuracy:.1%}" for n, e in evs.items())
            + f" ({time.perf_counter() - t0:.0f} s)")
    return {"schema_version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_info(),
            "settings": {"data": str(data), "detectors": list(detectors), "detector_dir": str(detector_dir or ""),
                         "pad": pad, "peer_crop": peer_crop, "whole_photo": "the unpadded photo resized as the face",
                         "accuracy": "no face = wrong", "command": ""},
            "models": about, "detection": detection, "rows": rows, "failed": failed}


def _cell(r: dict | None) -> str:
    if r is None:
        return "-"
    return f"{r['accuracy']:.1%} / {r['detection_rate']:.0%}"


def _balanced(r: dict) -> str:
    """A row's balanced accuracy (rows of results written before it was recorded: "-")."""
    return "-" if r.get("balanced_accuracy") is None else f"{r['balanced_accuracy']:.1%}"


def photos_markdown(res: dict) -> str:
    names = [a["name"] for a in res["models"]]
    cols = [d for d in [*res["settings"]["detectors"], WHOLE_PHOTO] if d in res["detection"]]
    at = {(r["model"], r["detector"]): r for r in res["rows"]}
    n = next(iter(res["detection"].values()), {}).get("n_photos", 0)
    lines = ["# End-to-end accuracy on labelled photos", "",
             f"Data: `{res['settings']['data']}` ({n} photos); detectors on the photo padded by "
             f"{res['settings']['pad']} x its longer side (edges replicated); the largest face is classified. "
             "Detection ran once per (detector, photo), shared by every model. \"whole photo\": the unpadded "
             "photo resized as the face (the photos are tight face crops).", "",
             "Cells: accuracy (no face = wrong) / detection rate.", "",
             markdown_table(["model", *cols], [[m, *(_cell(at.get((m, d))) for d in cols)] for m in names],
                            "l" + "r" * len(cols)), "",
             "## All numbers", "",
             markdown_table(["model", "detector", "photos", "faces", "detection rate", "accuracy",
                             "accuracy on detected", "balanced accuracy", "macro-F1"],
                            [[r["model"], r["detector"], r["n_photos"], r["n_detected"], f"{r['detection_rate']:.1%}",
                              f"{r['accuracy']:.1%}",
                              "-" if r["accuracy_detected"] is None else f"{r['accuracy_detected']:.1%}",
                              _balanced(r), f"{r['macro_f1']:.3f}"] for r in res["rows"]], "llrrrrrrr"), ""]
    best = {}
    for m in names:
        cand = [r for r in res["rows"] if r["model"] == m and r["detector"] != WHOLE_PHOTO]
        if cand:
            best[m] = max(cand, key=lambda r: r["accuracy"])
    if best:
        classes = sorted({c for r in best.values() for c in r["per_class_f1"]})
        lines += ["## Per-class F1 with each model's best detector", "",
                  markdown_table(["model", "detector", *classes],
                                 [[m, r["detector"], *(f"{r['per_class_f1'][c]:.3f}" if c in r["per_class_f1"]
                                                       else "-" for c in classes)] for m, r in best.items()],
                                 "ll" + "r" * len(classes)), ""]
    lines += ["## Models", "",
              markdown_table(["model", "kind", "file", "crop", "engine"],
                             [[a["name"], a["kind"], f"`{a['file']}`", a["crop"], a["engine"]] for a in res["models"]]),
              ""]
    if res["failed"]:
        lines += ["## Failed", ""] + [f"- {f['model'] or ''} {f['detector'] or ''}: {f['reason']}"
                                      for f in res["failed"]] + [""]
    if res["settings"].get("command"):
        lines += ["Command:", "", f"    {res['settings']['command']}", ""]
    return "\n".join(lines)


def plot_photos(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [a["name"] for a in res["models"]]
    cols = [d for d in [*res["settings"]["detectors"], WHOLE_PHOTO] if d in res["detection"]]
    at = {(r["model"], r["detector"]): r["accuracy"] for r in res["rows"]}
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names) + 2), 4))
    w = 0.8 / max(1, len(cols))
    x = np.arange(len(names))
    for i, d in enumerate(cols):
        vals = [at.get((m, d), 0.0) for m in names]
        bars = ax.bar(x + (i - (len(cols) - 1) / 2) * w, vals, w, label=d)
        ax.bar_label(bars, [f"{v:.0%}" for v in vals], fontsize=6)
    ax.set_xticks(x, names)
    ax.set_ylabel("accuracy (no face = wrong)")
    ax.set_ylim(0, 1)
    ax.set_title("end-to-end accuracy on labelled photos, per model and detector")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_photo_bench(res: dict, out: str | Path) -> Path:
    """photos.json, photos.md and photos.png in ``out``; returns the Markdown path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "photos.json").write_text(json.dumps(res, indent=2) + "\n")
    md = out / "photos.md"
    md.write_text(photos_markdown(res))
    plot_photos(res, out / "photos.png")
    return md


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
