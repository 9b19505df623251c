"""Per-board stage times (face detectors per frame, classifiers per face): measured on the board
itself with ``emoedge bench board``, or, where no board is at hand, derived from published
reference runs with ``emoedge bench board --estimate``.

The derivation (``--estimate``, run on the development machine):

1. Each published reference is a workload someone timed on a Raspberry Pi (``ANCHORS``: board,
   threads, milliseconds, where it was published). The same workload is run here, at one thread.
2. ``factor = published Pi 4 time / time here``: how much slower a Pi 4 at the reference's threads
   is than one thread of this machine on that kind of work (an OpenCV Haar cascade; an int8
   convolutional network).
3. Each of our stages is timed here at one thread in the same run and multiplied by its kind's
   factor: the Pi 4 estimate. Other boards: the Pi 4 estimate times the board's ratio to a Pi 4 in
   a published run of one workload on both (``BOARD_RATIOS``).

What it assumes, said in the report: our small networks spread over a Pi's 4 cores as well as the
reference network does (they spread less: estimates for 48x48 classifiers are optimistic); the SSD
detector (OpenCV DNN, float) scales like the int8 reference; the Pi 5 ratio includes four years of
TFLite speed-ups. A real board replaces all of it: ``emoedge bench board --write-profile P``.

This module is the derivation; by job, the rest is in :mod:`~emoedge.benchmarks.board_measure` (our
stages timed, on a board: ``measure``), :mod:`~emoedge.benchmarks.board_profile` (profile files
rewritten) and :mod:`~emoedge.benchmarks.board_report` (the CSV, JSON and the page).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# `name as name`: re-exported under the names they had when all of `emoedge bench board` was in this module
from emoedge.benchmarks.board_measure import CLASSIFIER_STAGES, FRAME_SIZE, StageTime, median_ms, stage_times_here
from emoedge.benchmarks.board_measure import DETECTOR_STAGES as DETECTOR_STAGES
from emoedge.benchmarks.board_measure import measure as measure
from emoedge.benchmarks.board_profile import BOARD_PROFILES as BOARD_PROFILES
from emoedge.benchmarks.board_profile import estimate_comment as estimate_comment
from emoedge.benchmarks.board_profile import write_profile_times as write_profile_times
from emoedge.benchmarks.board_report import write_csv as write_csv
from emoedge.benchmarks.board_report import write_estimates_md as write_estimates_md
from emoedge.benchmarks.machine import machine_info

ROUNDS = 3                      # --estimate: reference workloads and our stages timed in turn, medians kept


@dataclass(frozen=True)
class Anchor:
    """A published time of a reference workload on a board."""
    workload: str               # key of REFERENCE_WORKLOADS
    board: str
    threads: int
    ms: float
    source: str                 # where it was published
    detail: str


# Pi 4 Model B (Cortex-A72 @ 1.5 GHz, 64-bit Raspberry Pi OS unless said)
ANCHORS = (
    Anchor("haar-ref", "rpi4", 4, 393.0,
           "https://github.com/TonyCongqianWang/cv_facedetection_eval/blob/main/time_comparison_pi.md",
           "OpenCV haarcascade_frontalface_default, detectMultiScale3(scaleFactor=1.1, minNeighbors=3), "
           "640x640 WIDER FACE crops, Pi 4 (Cortex-A72 1.5 GHz, Bookworm), mean of images 0-2 "
           "(436.7, 327.6, 414.5 ms); 1 thread: 1417.6 ms"),
    Anchor("cnn-ref", "rpi4", 4, 82.7,
           "https://github.com/aallan/benchmarking-ml-on-the-edge (README table; hackster.io articles)",
           "TFLite, SSD MobileNet v1 0.75 depth, 300x300, COCO, quantized, 4 threads, Raspberry Pi 4"),
    Anchor("cnn-ref", "rpi5", 4, 16.9,
           "https://github.com/aallan/benchmarking-ml-on-the-edge (README table; hackster.io Pi 5 article)",
           "same workload and script on a Raspberry Pi 5 (Cortex-A76 2.4 GHz), TFLite of 2023"),
    Anchor("cnn-ref", "rpi3b+", 4, 271.5,
           "https://github.com/aallan/benchmarking-ml-on-the-edge (README table)",
           "same workload on a Raspberry Pi 3 Model B+ (Cortex-A53 1.4 GHz)"),
)

# Boards without a published run of the reference workloads: a published relative, scaled by clock.
CLOCK_SCALED = {
    # Zero 2 W: RP3A0 = the Pi 3's BCM2710A1 (4x Cortex-A53) at 1.0 GHz against the 3B+'s 1.4 GHz
    "rpi-zero2w": ("rpi3b+", 1.4 / 1.0, "Pi 3B+ time x 1.4 GHz / 1.0 GHz (same Cortex-A53 cores)"),
    # Coral Dev Board: NXP i.MX 8M, 4x Cortex-A53 at 1.5 GHz
    "coral-devboard": ("rpi3b+", 1.4 / 1.5, "Pi 3B+ time x 1.4 GHz / 1.5 GHz (same Cortex-A53 cores)"),
}
# Boards whose profiles detect on a smaller frame than 640x360: a cascade's work grows with the pixels
# it scans; the CNN detectors resize to their fixed input, so their time does not change.
DETECT_FRAME = {"rpi-zero2w": (320, 240)}
STAGE_KIND = {"haar": "haar-ref", "blazeface": "cnn-ref", "blazeface-full": "cnn-ref", "ssd": "cnn-ref",
              **{name: "cnn-ref" for name in CLASSIFIER_STAGES}}


def board_ratios() -> dict[str, tuple[float, str]]:
    """Each board's time relative to a Pi 4 on the CNN reference, with how it was derived."""
    pi = {a.board: a.ms for a in ANCHORS if a.workload == "cnn-ref"}
    out = {"rpi4": (1.0, "the reference board")}
    out["rpi5"] = (pi["rpi5"] / pi["rpi4"], f"published {pi['rpi5']} / {pi['rpi4']} ms")
    for board, (rel, clock, how) in CLOCK_SCALED.items():
        out[board] = (pi[rel] / pi["rpi4"] * clock, f"{how}: {pi[rel]} / {pi['rpi4']} x {clock:.3f}")
    return out


def _photos(shared: Path | None) -> list[np.ndarray]:
    """Face photos for the reference workloads: the shared photos if present, else matplotlib's."""
    import cv2

    paths = sorted((shared / "media").glob("*.jpg"))[:3] if shared and (shared / "media").is_dir() else []
    imgs = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]
    imgs = [i for i in imgs if i is not None]
    if not imgs:
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            rgb = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(f).convert("L"))
        imgs = [rgb]
    out = []
    for g in imgs:
        s = min(g.shape)
        y, x = (g.shape[0] - s) // 2, (g.shape[1] - s) // 2
        out.append(g[y:y + s, x:x + s])
    return out


def haar_reference_ms(shared: Path | None, runs: int = 5) -> float:
    """The Haar anchor's workload here (1 thread): default cascade, detectMultiScale3(1.1, 3) on 640x640."""
    import cv2

    cv2.setNumThreads(1)
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    times = []
    for g in _photos(shared):
        img = cv2.resize(g, (640, 640), interpolation=cv2.INTER_AREA)
        times.append(median_ms(lambda img=img: cascade.detectMultiScale3(img, scaleFactor=1.1, minNeighbors=3,
                                                                         outputRejectLevels=True), runs, 1))
    return float(np.mean(times))


def cnn_reference_model(cache: Path) -> Path:
    """The CNN anchor's network, built once: MobileNet v1 (alpha 0.75) at 300x300, int8 (full integer).
    Only the backbone (no SSD box heads): the reference ran somewhat more work than this, so the
    factor it gives is a little high and the estimates a little slow (on the safe side)."""
    path = cache / "mobilenet_v1_0.75_300_int8.tflite"
    if path.is_file():
        return path
    import os

    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as tf

    model = tf.keras.applications.MobileNet(input_shape=(300, 300, 3), alpha=0.75, include_top=False,
                                            weights=None)
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(conv.convert())
    tmp.replace(path)
    return path


def tflite_ms(model: Path, threads: int, runs: int = 30) -> float:
    """Median time of one invocation of a TFLite model on zeros (LiteRT, XNNPACK)."""
    from emoedge.edge.engines.interpreter import make_interpreter

    interp, _ = make_interpreter(model, "cpu", threads)
    d = interp.get_input_details()[0]
    interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    return median_ms(interp.invoke, runs, 5)


def estimate(shared: Path | None, source: str | None, detector_dir: str | None, cache: Path,
             runs: int = 20) -> dict:
    """The whole derivation, in one run on this machine (1 thread): reference workloads, our stages,
    factors, and the estimate per board and stage."""
    ref_model = cnn_reference_model(cache)
    rounds = []                  # interleaved: this machine's speed drifts between minutes, not within one
    for _ in range(ROUNDS):
        ref = {"haar-ref": haar_reference_ms(shared), "cnn-ref": tflite_ms(ref_model, 1)}
        stages, skipped = stage_times_here(1, source, detector_dir, runs)
        rounds.append({**ref, **stages})
    pi4 = {a.workload: a for a in ANCHORS if a.board == "rpi4"}
    # per round: a stage's time relative to its reference workload's, in the same minute; medians over rounds
    rel = {s: float(np.median([r[s] / r[STAGE_KIND[s]] for r in rounds])) for s in rounds[0] if s in STAGE_KIND}
    ref_here = {k: float(np.median([r[k] for r in rounds])) for k in pi4}
    here = {s: float(np.median([r[s] for r in rounds])) for s in rel}
    factors = {k: float(np.median([pi4[k].ms / r[k] for r in rounds])) for k in pi4}
    rows = []
    for board, (ratio, how) in board_ratios().items():
        w, h = DETECT_FRAME.get(board, FRAME_SIZE)
        area = w * h / (FRAME_SIZE[0] * FRAME_SIZE[1])
        for stage in here:
            kind = STAGE_KIND[stage]
            scale = area if stage == "haar" else 1.0
            rows.append(StageTime(board, stage, rel[stage] * pi4[kind].ms * ratio * scale, pi4[kind].threads,
                                  "estimated",
                                  f"{rel[stage]:.4f} x the {kind} workload here (1 thread, median of {len(rounds)} "
                                  f"rounds) x its Pi 4 time {pi4[kind].ms} ms x {ratio:.3f} ({how})"
                                  + (f" x {scale:.3f} ({w}x{h} frames)" if scale != 1.0 else "")))
    from emoedge.core.macs import tflite_macs

    macs = {}
    for name, path in _stage_files(detector_dir).items():
        macs[name] = tflite_macs(path)
    macs["cnn-ref"] = tflite_macs(cnn_reference_model(cache))
    return {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "rounds": rounds,
            "reference_here_ms": ref_here,
            "factors": factors, "board_ratios": {b: r for b, (r, _) in board_ratios().items()},
            "stages_here_ms": here, "skipped": skipped, "macs": macs,
            "anchors": [asdict(a) for a in ANCHORS], "rows": [asdict(r) for r in rows]}


def _stage_files(detector_dir: str | None) -> dict[str, Path]:
    """The TFLite file of each stage that has one (for its MAC count)."""
    from emoedge.core.shipped import resolve_model
    from emoedge.edge.faces import fetch

    files = {}
    for name in ("blazeface", "blazeface-full"):
        try:
            files[name] = fetch.locate(name, detector_dir)[0]
        except (OSError, ValueError):
            continue
    for name in CLASSIFIER_STAGES:
        try:
            files[name] = resolve_model(name)
        except (OSError, ValueError):
            continue
    return files
