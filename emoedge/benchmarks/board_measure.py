"""Our stages timed on this machine (face detectors per 640x360 frame, shipped classifiers per face):
on a board itself, ``emoedge bench board`` (:func:`measure`); on the development machine, the
"here" part of ``--estimate`` (:mod:`emoedge.benchmarks.board_timings`)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emoedge.benchmarks.machine import machine_info
from emoedge.benchmarks.timing import percentiles, time_calls

DETECTOR_STAGES = ("haar", "blazeface", "blazeface-full", "ssd")
CLASSIFIER_STAGES = ("fast", "onepass", "ferplus7", "ferplus8", "default")
FRAME_SIZE = (640, 360)         # the profiles' detection resolution (picamera2 lores / a 640x360 frame)


@dataclass(frozen=True)
class StageTime:
    """One stage's time on one board."""
    board: str
    stage: str
    ms: float
    threads: int
    method: str                 # measured | estimated
    derivation: str


def median_ms(fn, runs: int, warmup: int = 3) -> float:
    """The median time of ``runs`` calls of ``fn`` after ``warmup`` calls, in ms."""
    return percentiles(time_calls(fn, runs, warmup), [50])[0]


def _frames(source: str | None, n: int) -> list[np.ndarray]:
    """``n`` frames of 640x360 from a video (spread over it), else a face photo letterboxed to 640x360."""
    import cv2

    frames = []
    if source and Path(source).is_file():
        cap = cv2.VideoCapture(str(source))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or n
        for k in range(n):
            cap.set(cv2.CAP_PROP_POS_FRAMES, k * max(1, total // n))
            ok, f = cap.read()
            if ok:
                frames.append(cv2.resize(f, FRAME_SIZE, interpolation=cv2.INTER_AREA))
        cap.release()
    if not frames:
        from emoedge.edge.runtime.demo import demo_image

        img = demo_image()
        frames = [cv2.resize(img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), FRAME_SIZE)]
    return frames


def stage_times_here(threads: int, source: str | None, detector_dir: str | None, runs: int = 20,
                     detectors=DETECTOR_STAGES, models=CLASSIFIER_STAGES) -> tuple[dict[str, float], dict[str, str]]:
    """Our stages on this machine at ``threads``: each detector per 640x360 frame (full scale), each
    shipped classifier per face. Returns (ms per stage, reason per stage that could not run)."""
    import cv2

    from emoedge.core.shipped import resolve_model
    from emoedge.edge.faces.detect import make_detector
    from emoedge.edge.inference.classify import FaceClassifier

    cv2.setNumThreads(threads)
    frames = _frames(source, 8)
    out, skipped = {}, {}
    for name in detectors:
        try:
            det = make_detector(name, detector_dir, num_threads=threads)
        except (OSError, ValueError, RuntimeError) as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        per = [median_ms(lambda f=f, det=det: det.detect(f, 1.0), max(3, runs // 4), 1) for f in frames]
        out[name] = float(np.mean(per))
    face = np.random.default_rng(0).random((1, 48, 48, 1), dtype=np.float32)
    for name in models:
        try:
            clf = FaceClassifier(resolve_model(name), num_threads=threads)
        except (OSError, ValueError, RuntimeError) as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        out[name] = median_ms(lambda clf=clf: clf.predict(face), runs * 5, 10)
    return out, skipped


def measure(threads: int, source: str | None, detector_dir: str | None, runs: int = 20) -> dict:
    """On the board itself: our stages at the profile's threads; these replace the estimates."""
    here, skipped = stage_times_here(threads, source, detector_dir, runs)
    board = machine_info().get("board") or machine_info()["cpu"]
    rows = [StageTime(board, s, ms, threads, "measured", f"emoedge bench board on {board}") for s, ms in here.items()]
    return {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "skipped": skipped,
            "rows": [asdict(r) for r in rows]}
