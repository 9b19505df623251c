"""The on-device pipeline: source -> detect (every N frames) / track -> classify (capped,
rotating) -> smooth -> sinks, under a fixed per-frame latency budget.

All resources (source, detector, interpreter, sinks) are created once, in ``__init__``, never in
the frame loop. ``run()`` returns a typed summary; Ctrl-C / SIGTERM (or ``stop()``) end the loop
cleanly and every sink is flushed and closed.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emoedge.edge.classify import FaceClassifier
from emoedge.edge.config import RuntimeConfig
from emoedge.edge.detect import make_detector
from emoedge.edge.models import read_manifest, resolve_model
from emoedge.edge.monitor import DriftMonitor, MetricsServer
from emoedge.edge.preprocess import preprocess_faces, to_gray
from emoedge.edge.scheduler import STAGES, BudgetScheduler
from emoedge.edge.sdnotify import Notifier
from emoedge.edge.sinks import (Aggregator, DisplaySink, FaceEvent, IntervalSummary, JsonlSink, Sink, SqliteSink,
                                VideoSink)
from emoedge.edge.sources import FrameSource, SourceError, open_source
from emoedge.edge.tracking import EmaSmoother, IoUTracker


@dataclass(frozen=True)
class StageLatency:
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class RunSummary:
    source: str
    model: str
    detector: str
    frames: int
    duration_s: float
    fps: float
    dropped_frames: int
    faces_seen: int                       # distinct tracks
    frames_with_faces: int
    detection_frames: int                 # frames on which the detector ran
    detections: int                       # faces the detector returned, summed over those frames
    classifications: int
    labels: dict[str, int]                # label -> face-frames with that smoothed label
    budget_ms: float
    budget_hits: int
    budget_misses: int
    misses_by_stage: dict[str, int]
    latency: dict[str, StageLatency]      # per stage and "frame"
    events_written: int
    intervals_written: int
    stopped_by: str                       # end | max_frames | signal | display | source_failed | error

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        lines = [f"{self.frames} frames in {self.duration_s:.1f} s = {self.fps:.1f} FPS from {self.source} "
                 f"({self.dropped_frames} dropped); detector {self.detector}, model {Path(self.model).name}",
                 f"faces: {self.faces_seen} tracked, on {self.frames_with_faces} frames; "
                 f"{self.classifications} classifications; labels {dict(self.labels)}",
                 f"budget {self.budget_ms:.0f} ms: {self.budget_hits} hits, {self.budget_misses} misses "
                 f"(by stage: {', '.join(f'{k} {v}' for k, v in self.misses_by_stage.items() if v) or 'none'})",
                 "latency ms (p50 / p95 / p99): " + "; ".join(
                     f"{k} {v.p50_ms:.2f}/{v.p95_ms:.2f}/{v.p99_ms:.2f}" for k, v in self.latency.items()),
                 f"events {self.events_written}, intervals {self.intervals_written}; stopped by {self.stopped_by}"]
        return "\n".join(lines)


def _latency(values: Sequence[float]) -> StageLatency:
    if not values:
        return StageLatency(0.0, 0.0, 0.0, 0.0, 0.0)
    a = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return StageLatency(float(a.mean()), float(p50), float(p95), float(p99), float(a.max()))


class Pipeline:
    def __init__(self, config: RuntimeConfig | None = None, *, source: FrameSource | None = None,
                 detector=None, classifier: FaceClassifier | None = None, sinks: Sequence[Sink] | None = None,
                 clock: Callable[[], int] = time.monotonic_ns, status: Callable[[str], None] | None = None):
        self.config = c = config or RuntimeConfig()
        self.clock = clock
        self.status = status
        self._stop = threading.Event()
        self._stopped_by = "end"
        self.error: str | None = None
        self.source = source or open_source(c.source, clock=clock, realtime=c.realtime, width=c.width,
                                            height=c.height, fps=c.fps, lores=(c.lores_width, c.lores_height))
        try:
            self.detector = detector or make_detector(c.detector, c.detector_dir, c.threads, c.min_face_score)
            if classifier is None:
                model_path = resolve_model(c.model, c.model_format)
                classifier = FaceClassifier(model_path, num_threads=c.threads, margin=c.margin, delegate=c.delegate,
                                            detector=self.detector)
            self.classifier = classifier
            self.class_names = classifier.class_names
            self.tracker = IoUTracker()
            self.smoother = EmaSmoother(self.class_names, c.smoothing_alpha, c.uncertain_below)
            self.scheduler = BudgetScheduler(c.budget_ms, c.detect_every, c.max_faces, c.adapt, c.min_detect_scale,
                                             c.max_detect_scale)
            self.aggregator = Aggregator(self.class_names, c.interval_s)
            self.monitor = self._make_monitor()
            self.snapshot: dict = {"frames": 0}
            self.metrics = MetricsServer(lambda: dict(self.snapshot), c.metrics_host, c.metrics_port) \
                if c.metrics_port is not None else None
            if sinks is None:
                sinks = []
                if c.events:
                    sinks.append(JsonlSink(c.events))
                if c.db:
                    sinks.append(SqliteSink(c.db))
                if c.video_out:
                    sinks.append(VideoSink(c.video_out, fps=1000.0 / c.budget_ms))
                if c.display or c.fullscreen:
                    sinks.append(DisplaySink(fullscreen=c.fullscreen))
            self.sinks = list(sinks)
        except BaseException:
            self.source.close()
            raise

    def _make_monitor(self) -> DriftMonitor | None:
        """Drift monitoring against the reference distribution the model's manifest records."""
        manifest = read_manifest(self.classifier.model_path) if hasattr(self.classifier, "model_path") else None
        ref = (manifest or {}).get("reference_distribution")
        if not ref:
            if self.status:
                self.status("drift monitoring off: the model's manifest has no reference_distribution")
            return None
        return DriftMonitor(self.class_names, ref, self.config.drift_window, self.config.drift_threshold,
                            float((manifest or {}).get("reference_abstention", 0.0)))

    def stop(self, reason: str = "signal") -> None:
        self._stopped_by = reason
        self._stop.set()
        self.source.interrupt()

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}

        def handler(signum, frame):
            self.stop("signal")

        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    def run(self, max_frames: int | None = None) -> RunSummary:
        c = self.config
        max_frames = max_frames if max_frames is not None else c.max_frames
        old_handlers = self._install_signals()
        times: dict[str, list[float]] = {s: [] for s in STAGES}
        times["frame"] = []
        labels: Counter = Counter()
        frames = frames_with_faces = classifications = events = intervals = 0
        detection_frames = detections = 0
        t_start = self.clock()
        last_status = last_pet = t_start
        ms = 1e-6
        notifier = Notifier()
        notifier.notify("READY=1")
        try:
            while not self._stop.is_set():
                if max_frames is not None and frames >= max_frames:
                    self._stopped_by = "max_frames"
                    break
                t0 = self.clock()
                try:
                    frame = self.source.read()
                except SourceError as exc:  # the camera is gone after its reconnect attempts: stop cleanly
                    self._stopped_by = "source_failed"
                    self.error = str(exc)
                    print(f"emoedge: {exc}; stopping (everything recorded so far is kept)", file=sys.stderr)
                    break
                t1 = self.clock()
                if frame is None:
                    if not self._stop.is_set():
                        self._stopped_by = "end"
                    break
                work = frame.gray if frame.gray is not None else frame.image
                scale = frame.image.shape[1] / work.shape[1]
                if self.source.independent_frames:  # unrelated photos: detect each, track nothing across
                    self.tracker.restart()
                plan = self.scheduler.plan(frames, self.tracker.tracks)
                detect_ms = 0.0
                if plan.detect:
                    faces = self.detector.detect(work, plan.detect_scale)
                    t2 = self.clock()
                    detection_frames += 1
                    detections += len(faces)
                    detect_ms = (t2 - t1) * ms
                    tracks = self.tracker.update(faces, frames)
                else:
                    t2 = t1
                    tracks = self.tracker.follow(frames)
                t3 = self.clock()
                chosen = self.scheduler.choose(tracks, plan.max_faces)
                pre_ms = cls_ms = 0.0
                if chosen:
                    gray = to_gray(work)
                    batch = preprocess_faces(gray, [t.int_box() for t in chosen], self.classifier.margin)
                    t4 = self.clock()
                    probs = self.classifier.predict(batch)
                    t5 = self.clock()
                    pre_ms, cls_ms = (t4 - t3) * ms, (t5 - t4) * ms
                    for t, p in zip(chosen, probs):
                        before = t.label
                        self.smoother.observe(t, p, frames)
                        if self.monitor is not None:
                            drift = self.monitor.observe(t.label, t.confidence, frame.timestamp_ns)
                            if drift is not None:
                                for s in self.sinks:
                                    s.on_event(drift)
                                events += 1
                        if t.label != before:
                            ev = FaceEvent(frame.timestamp_ns, frame.index, t.track_id, t.label, before,
                                           round(t.confidence, 4), t.int_box())
                            for s in self.sinks:
                                s.on_event(ev)
                            events += 1
                    classifications += len(chosen)
                t6 = self.clock()
                if tracks:
                    frames_with_faces += 1
                for t in tracks:
                    if t.label is not None:
                        labels[t.label] += 1
                done = self.aggregator.add(frame.timestamp_ns, tracks)
                if done is not None:
                    intervals += self._emit_interval(done)
                for s in self.sinks:
                    s.on_frame(frame, tracks, scale)
                    if getattr(s, "quit", False):
                        self.stop("display")
                t7 = self.clock()
                stage_ms = {"capture": (t1 - t0) * ms, "detect": detect_ms, "track": (t3 - t2) * ms,
                            "preprocess": pre_ms, "classify": cls_ms, "sinks": (t7 - t6) * ms}
                for k, v in stage_ms.items():
                    times[k].append(v)
                times["frame"].append((t7 - t0) * ms)
                self.scheduler.record(plan, stage_ms, len(chosen))
                frames += 1
                self.snapshot = {"frames": frames, "faces": len(tracks), "classifications": classifications,
                                 "budget_misses": self.scheduler.stats.misses, "frame_ms": (t7 - t0) * ms,
                                 "js": self.monitor.js if self.monitor else 0.0,
                                 "drifting": bool(self.monitor and self.monitor.drifting),
                                 "shares": self.monitor.distribution() if self.monitor and frames % 30 == 0
                                 else self.snapshot.get("shares", {})}
                if t7 - last_pet >= 1_000_000_000:  # systemd watchdog: frames are flowing
                    notifier.notify("WATCHDOG=1")
                    last_pet = t7
                if self.status and c.status_every_s and (t7 - last_status) * 1e-9 >= c.status_every_s:
                    last_status = t7
                    el = (t7 - t_start) * 1e-9
                    st = self.scheduler.stats
                    self.status(f"{frames} frames {frames / el if el else 0:.1f} FPS, {len(tracks)} faces, "
                                f"budget misses {st.misses}/{st.frames}, detect scale {plan.detect_scale:.2f} "
                                f"every {plan.detect_every}")
        except BaseException:
            self._stopped_by = "error"
            raise
        finally:
            notifier.notify("STOPPING=1")
            notifier.close()
            last = self.aggregator.flush()
            if last is not None:
                try:
                    intervals += self._emit_interval(last)
                except Exception:  # keep closing the other sinks; the error surfaces below if any
                    pass
            self._close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
        duration = (self.clock() - t_start) * 1e-9
        st = self.scheduler.stats
        return RunSummary(
            source=self.source.name, model=str(getattr(self.classifier, "model_path", "?")),
            detector=getattr(self.detector, "name", type(self.detector).__name__), frames=frames,
            duration_s=duration, fps=frames / duration if duration > 0 else 0.0,
            dropped_frames=self.source.dropped, faces_seen=self.tracker.total_tracks,
            frames_with_faces=frames_with_faces, detection_frames=detection_frames, detections=detections,
            classifications=classifications, labels=dict(labels),
            budget_ms=c.budget_ms, budget_hits=st.hits, budget_misses=st.misses,
            misses_by_stage=dict(st.misses_by_stage), latency={k: _latency(v) for k, v in times.items()},
            events_written=events, intervals_written=intervals, stopped_by=self._stopped_by)

    def _emit_interval(self, summary: IntervalSummary) -> int:
        for s in self.sinks:
            s.on_interval(summary)
        return 1

    def _close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        for s in self.sinks:
            try:
                s.close()
            except Exception as exc:  # one failing sink must not keep the others from flushing
                print(f"emoedge: closing {type(s).__name__} failed: {exc}", file=sys.stderr)
        self.source.close()


def run(config: RuntimeConfig, status: Callable[[str], None] | None = None) -> RunSummary:
    """Build a pipeline from ``config`` and run it (the API behind ``emoedge run``)."""
    return Pipeline(config, status=status).run()
