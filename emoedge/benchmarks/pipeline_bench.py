"""Pipeline benchmark: the runtime end to end on a video or image set, each in a fresh process
(so peak RSS and CPU time belong to that run alone), beside a naive baseline of the kind most
tutorials write: Haar at full resolution on every frame, then a Keras ``predict`` per face."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class PipelineResult:
    name: str
    status: str                      # ok | failed
    reason: str = ""
    detector: str = ""
    model: str = ""
    frames: int = 0
    fps: float = 0.0
    faces_per_frame: float = 0.0              # labelled faces per frame (tracked faces count between detections)
    faces_per_detection: float = 0.0          # faces the detector found per frame it ran on
    budget_ms: float | None = None
    budget_hit_rate: float | None = None
    latency: dict | None = None      # stage -> {p50_ms, p95_ms, p99_ms, mean_ms}
    cpu_s: float | None = None
    wall_s: float | None = None
    peak_rss_mb: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _child(kind: str, args: dict) -> dict:
    """Run in a child process: the runtime pipeline or the naive baseline; print JSON."""
    t0 = time.perf_counter()
    if kind == "runtime":
        from emoedge.edge.runtime.config import RuntimeConfig
        from emoedge.edge.runtime.pipeline import Pipeline

        cfg = RuntimeConfig(source=args["source"], model=args["model"], model_format=args["format"],
                            detector=args["detector"], detector_dir=args.get("detector_dir"),
                            budget_ms=args["budget_ms"], detect_every=args.get("detect_every") or 5,
                            max_frames=args.get("max_frames"), threads=args.get("threads"), status_every_s=0,
                            **{k: args[k] for k in ("min_detect_scale", "adapt") if args.get(k) is not None})
        s = Pipeline(cfg).run()
        lat = {k: {"p50_ms": v.p50_ms, "p95_ms": v.p95_ms, "p99_ms": v.p99_ms, "mean_ms": v.mean_ms}
               for k, v in s.latency.items()}
        # face-frames: every tracked face with a label on every frame, what the sinks see
        out = {"frames": s.frames, "hits": s.budget_hits, "latency": lat, "faces_total": int(sum(s.labels.values())),
               "detections": s.detections, "detection_frames": s.detection_frames}
    else:
        out = _naive(args)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    from emoedge.benchmarks.machine import peak_rss_mb

    out.update({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": peak_rss_mb()})
    return out


def _naive(args: dict) -> dict:
    """Haar at full resolution on every frame, Keras predict per face (the tutorial pipeline)."""
    import cv2

    from emoedge.benchmarks.timing import summary, time_call
    from emoedge.core.preprocess import preprocess_face
    from emoedge.edge.runtime.sources import open_source
    from emoedge.keras.io import load_keras

    model = load_keras(args["keras_model"])
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    src = open_source(args["source"])

    def frame(image):
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        for (x, y, w, h) in (boxes if len(boxes) else []):
            model.predict(preprocess_face(gray, (x, y, w, h))[None], verbose=0)
        return boxes

    frames = faces_total = 0
    per_frame = []
    max_frames = args.get("max_frames")
    while max_frames is None or frames < max_frames:
        f = src.read()
        if f is None:
            break
        boxes, ms = time_call(frame, f.image)
        per_frame.append(ms)
        faces_total += len(boxes)
        frames += 1
    src.close()
    lat = {"frame": summary(per_frame)}
    return {"frames": frames, "faces_total": faces_total, "hits": None, "latency": lat,
            "detections": faces_total, "detection_frames": frames}


def run_child(kind: str, args: dict, timeout_s: float = 1800) -> dict:
    code = "import json, sys; from emoedge.benchmarks.pipeline_bench import _child; " \
           "print('RESULT ' + json.dumps(_child(sys.argv[1], json.loads(sys.argv[2]))))"
    r = subprocess.run([sys.executable, "-c", code, kind, json.dumps(args)], capture_output=True, text=True,
                       timeout=timeout_s)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        err = r.stderr.strip().splitlines()
        raise RuntimeError(err[-1] if err else f"exit {r.returncode}")
    return json.loads(lines[-1][len("RESULT "):])


def bench_pipeline(name: str, source: str, detector: str = "haar", model: str = "default", fmt: str = "int8",
                   budget_ms: float = 66.0, max_frames: int | None = None, detector_dir: str | None = None,
                   threads: int | None = None, naive_keras_model: str | None = None,
                   min_detect_scale: float | None = None, detect_every: int | None = None,
                   adapt: bool | None = None) -> PipelineResult:
    """One configuration (or, with ``naive_keras_model``, the naive baseline) in a fresh process.
    ``min_detect_scale`` (default: the runtime's) bounds how far detection may shrink to fit the budget;
    1.0 keeps it at full resolution (only the detection cadence adapts)."""
    kind = "naive" if naive_keras_model else "runtime"
    args = {"source": source, "model": model, "format": fmt, "detector": detector, "detector_dir": detector_dir,
            "budget_ms": budget_ms, "max_frames": max_frames, "threads": threads,
            "keras_model": naive_keras_model, "min_detect_scale": min_detect_scale, "detect_every": detect_every,
            "adapt": adapt}
    try:
        d = run_child(kind, args)
    except Exception as exc:
        return PipelineResult(name, "failed", f"{type(exc).__name__}: {str(exc)[:300]}", detector, model)
    frames = d["frames"] or 1
    frame_lat = d["latency"].get("frame", {})
    # FPS from the loop's own time (frame latency), so process start-up and model loading are excluded
    loop_s = frame_lat.get("mean_ms", 0.0) * d["frames"] / 1000.0
    return PipelineResult(
        name=name, status="ok", detector="haar (full frame, every frame)" if kind == "naive" else detector,
        model=naive_keras_model or f"{model} ({fmt})", frames=d["frames"],
        fps=d["frames"] / loop_s if loop_s > 0 else 0.0, faces_per_frame=d["faces_total"] / frames,
        faces_per_detection=d["detections"] / max(1, d["detection_frames"]),
        budget_ms=None if kind == "naive" else budget_ms,
        budget_hit_rate=None if d["hits"] is None else d["hits"] / frames, latency=d["latency"],
        cpu_s=d["cpu_s"], wall_s=d["wall_s"], peak_rss_mb=d["peak_rss_mb"])
