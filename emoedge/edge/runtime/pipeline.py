"""The on-device pipeline: source -> detect (every N frames) / track -> classify (capped,
rotating) -> smooth -> sinks, under a fixed per-frame latency budget.

All resources (source, detector, interpreter, sinks) are created once, in ``__init__``, never in
the frame loop. ``run()`` returns a typed summary; Ctrl-C / SIGTERM (or ``stop()``) end the loop
cleanly and every sink is flushed and closed.

``run()`` is a loop over ``_step`` (one frame: ``_read``, ``_find_faces``, ``_classify``, ``_write``,
``_account``); around it: ``counters`` (what a run counts), ``frame_timing`` (a frame's stage
times), ``heartbeat`` (systemd, the status line), ``record_writer`` (records to the sinks, losses
counted) and ``builders`` (the sinks, log file and CSV path made at start).
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from emoedge.core.errors import BadInputError, WriteError
from emoedge.core.preprocess import IDENTITY, preprocess_faces, to_gray
from emoedge.core.shipped import read_manifest, resolve_model
from emoedge.edge.faces.detect import make_detector
from emoedge.edge.faces.tracking import DEFAULT_UNCERTAIN_BELOW, EmaSmoother, IoUTracker
from emoedge.edge.inference.classify import FaceClassifier
from emoedge.edge.outputs.records import Aggregator, FaceEvent, IntervalSummary, RunInfo
from emoedge.edge.outputs.sinks import Sink
from emoedge.edge.runtime.builders import add_configured_sinks, close_log_file, csv_export_path, open_log_file
from emoedge.edge.runtime.config import Deployment, RuntimeConfig
from emoedge.edge.runtime.counters import RunCounters
from emoedge.edge.runtime.frame_timing import FrameTimes
from emoedge.edge.runtime.heartbeat import Heartbeat
from emoedge.edge.runtime.monitor import DriftMonitor, MetricsServer, RuntimeMetrics
from emoedge.edge.runtime.record_writer import RecordWriter
from emoedge.edge.runtime.scheduler import STAGES, BudgetScheduler, FramePlan
from emoedge.edge.runtime.sources import Frame, FrameSource, SourceError, open_source
from emoedge.edge.runtime.stats import RunSummary

log = logging.getLogger("emoedge.edge.runtime.pipeline")

LAWFUL_USE = ("the EU AI Act (Regulation (EU) 2024/1689, Article 5(1)(f)) prohibits emotion recognition in "
              "workplaces and education institutions since 2 February 2025, except for medical or safety reasons; "
              "see the README's 'Lawful use'")


@dataclass
class _Run:
    """One run: its record (who wrote what follows), its open interval, its counts, its signs of life."""
    info: RunInfo
    aggregator: Aggregator
    heartbeat: Heartbeat
    started_ns: int
    counters: RunCounters = field(default_factory=RunCounters)


class Pipeline:
    def __init__(self, config: RuntimeConfig | None = None, *, deployment: Deployment | None = None,
                 source: FrameSource | None = None, detector=None, classifier: FaceClassifier | None = None,
                 sinks: Sequence[Sink] | None = None, clock: Callable[[], int] = time.monotonic_ns,
                 wall_clock: Callable[[], int] = time.time_ns, status: Callable[[str], None] | None = None):
        self.config = c = config or RuntimeConfig()
        self.deployment = deployment
        self.clock = clock
        self.wall_clock = wall_clock
        self.status = status
        self._stop = threading.Event()
        self._stopped_by = "end"
        self.error: str | None = None
        if deployment is not None:
            deployment.check_runtime(c)       # the deployment's rules are a floor the config cannot lower
        if c.require_purpose and not (c.purpose and c.jurisdiction):
            raise BadInputError(
                "this deployment (a classroom sensor) does not start until its purpose and jurisdiction are set: "
                "--set deployment.purpose='...' --set deployment.jurisdiction=... (e.g. a medical or safety "
                f"purpose, or a country outside the EU); {LAWFUL_USE}")
        self._log_handler = open_log_file(deployment)
        if c.purpose or c.jurisdiction:
            log.warning("deployment purpose: %s; jurisdiction: %s (stored with every record)", c.purpose or "-",
                        c.jurisdiction or "-")
        self.source = source or open_source(c.source, clock=clock, realtime=c.realtime, width=c.width,
                                            height=c.height, fps=c.fps, lores=(c.lores_width, c.lores_height),
                                            loop=c.loop)
        self.sinks: list[Sink] = []
        self.writer = RecordWriter(self.sinks)   # records to the sinks; losses counted and said
        self.metrics: MetricsServer | None = None     # the /metrics and /health endpoint
        self.runtime_metrics: RuntimeMetrics | None = None   # its Prometheus registry (only when it is on)
        try:
            self.detector = detector or make_detector(c.detector, c.detector_dir, c.threads, c.min_face_score)
            if classifier is None:
                model_path = resolve_model(c.model, c.model_format)
                classifier = FaceClassifier(model_path, num_threads=c.threads, margin=c.margin, delegate=c.delegate,
                                            detector=self.detector, class_prior=c.class_prior,
                                            prior_strength=c.class_prior_strength)
            self.classifier = classifier
            # the detector's box -> training-crop geometry (a detector that declares none: its boxes as they are)
            self.crop = getattr(self.detector, "crop", IDENTITY)
            self.class_names = classifier.class_names
            self.tracker = IoUTracker()
            # the configured `uncertain` threshold, else the one chosen for the model on validation
            self.uncertain_below = (c.uncertain_below if c.uncertain_below is not None
                                    else getattr(classifier, "uncertain_below", DEFAULT_UNCERTAIN_BELOW))
            self.smoother = EmaSmoother(self.class_names, c.smoothing_alpha, self.uncertain_below)
            self.scheduler = BudgetScheduler(c.budget_ms, c.detect_every, c.max_faces, c.adapt, c.min_detect_scale,
                                             c.max_detect_scale)
            self.monitor = self._make_monitor()
            self.frames = 0
            self._last_frame_ns: int | None = None
            self._started_ns = clock()
            if sinks is None:
                add_configured_sinks(self.sinks, c, self.source, self.class_names)
            else:
                self.sinks.extend(sinks)
            if deployment is not None:
                self.writer.export_csv_to(csv_export_path(deployment, c), c.db, c.min_free_mb,
                                          deployment.export_every_min)
            if c.metrics_port is not None:
                self.runtime_metrics = RuntimeMetrics(STAGES, self._last_frame_age_s, self.monitor)
                self.writer.lost_counter = self.runtime_metrics.records_lost
                self.metrics = MetricsServer(self._health_snapshot, self.runtime_metrics.registry, c.metrics_host,
                                             c.metrics_port)
        except BaseException:
            self._close_quietly()
            raise

    # -- set-up helpers -----------------------------------------------------------------------
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

    def _last_frame_age_s(self) -> float:
        last = self._last_frame_ns if self._last_frame_ns is not None else self._started_ns
        return (self.clock() - last) / 1e9

    def _health_snapshot(self) -> dict:
        """What /health shows, computed when asked (the server's thread)."""
        age = self._last_frame_age_s()
        problems = []
        if age > self.config.stale_after_s:
            problems.append(f"stale: no frame for {age:.1f} s (limit {self.config.stale_after_s:g} s)")
        problems += [f"storage: {msg}" for msg in list(self.writer.failing.values())]
        return {"frames": self.frames, "last_frame_age_s": round(age, 3), "records_lost": self.records_lost,
                "drifting": bool(self.monitor is not None and self.monitor.drifting), "problems": problems}

    # -- stopping -----------------------------------------------------------------------------
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

    # -- writing records (emoedge.edge.runtime.record_writer) ----------------------------------------
    @property
    def records_lost(self) -> int:
        return self.writer.records_lost

    @property
    def write_errors(self) -> dict[str, str]:
        return self.writer.write_errors

    def _emit_interval(self, summary: IntervalSummary) -> int:
        return self.writer.interval(summary, self.wall_clock())

    # -- the frame loop -------------------------------------------------------------------------
    def run(self, max_frames: int | None = None) -> RunSummary:
        """Frames until the source ends, ``max_frames``, ``stop()`` or a signal; then the open
        interval is written, every sink flushed and closed, and the run's summary returned."""
        max_frames = max_frames if max_frames is not None else self.config.max_frames
        old_handlers = self._install_signals()
        run = self._start()
        try:
            while not self._stop.is_set():
                if max_frames is not None and run.counters.frames >= max_frames:
                    self._stopped_by = "max_frames"
                    break
                if not self._step(run):
                    break
        except BaseException:
            self._stopped_by = "error"
            raise
        finally:
            self._finish(run, old_handlers)
        return self._summary(run)

    def _start(self) -> _Run:
        """The run's record (who wrote what follows) to every sink; systemd is told the run is ready."""
        c = self.config
        info = RunInfo.new(self.wall_clock(), source=self.source.name,
                           model=str(getattr(self.classifier, "model_path", "?")),
                           detector=getattr(self.detector, "name", type(self.detector).__name__),
                           purpose=c.purpose, jurisdiction=c.jurisdiction)
        aggregator = Aggregator(self.class_names, c.interval_s, info.run_id)
        self._started_ns = started = self.clock()
        run = _Run(info, aggregator, Heartbeat(started, c.status_every_s if self.status else None), started)
        self.writer.prune(info.started_unix_ns)
        self.writer.deliver("on_start", info)
        run.heartbeat.ready()
        return run

    def _step(self, run: _Run) -> bool:
        """One frame: read it, find the faces, classify some, count, write. False: no frame (stop)."""
        t = FrameTimes(self.clock())
        frame = self._read(t)
        if frame is None:
            return False
        wall = self.wall_clock()
        work = frame.gray if frame.gray is not None else frame.image   # what detection and classification see
        plan, tracks = self._find_faces(run.counters, frame, work, t)
        chosen = self.scheduler.choose(tracks, plan.max_faces)
        self._classify(run, frame, work, chosen, wall, t)
        t.faces_done = self.clock()
        run.counters.count_faces(tracks, self.class_names)
        self._write(run, frame, tracks, wall, scale=frame.image.shape[1] / work.shape[1])
        t.end = self.clock()
        self._account(run, plan, t, len(chosen), len(tracks))
        return True

    def _read(self, t: FrameTimes) -> Frame | None:
        """The next frame; None at the end, once stopping, or when the camera is gone after its
        reconnect attempts (then the run stops cleanly, keeping everything recorded so far)."""
        try:
            frame = self.source.read()
        except SourceError as exc:
            self._stopped_by = "source_failed"
            self.error = str(exc)
            log.error("%s; stopping (everything recorded so far is kept)", exc)
            return None
        t.captured = self.clock()
        if frame is None:
            if not self._stop.is_set():
                self._stopped_by = "end"
            return None
        self._last_frame_ns = t.captured
        return frame

    def _find_faces(self, n: RunCounters, frame: Frame, work, t: FrameTimes) -> tuple[FramePlan, list]:
        """Detect (when the scheduler says so, at its scale) and update the tracks, or follow them."""
        size = (work.shape[1], work.shape[0])
        if self.source.independent_frames or frame.discontinuity:  # unrelated to the last frame
            self.tracker.restart()
        plan = self.scheduler.plan(n.frames, self.tracker.tracks)
        if plan.detect:
            faces = self.detector.detect(work, plan.detect_scale)
            t.detected = self.clock()
            n.detection_frames += 1
            n.detections += len(faces)
            tracks = self.tracker.update(faces, n.frames, size)
        else:
            t.no_detection()
            tracks = self.tracker.follow(n.frames, size)
        t.tracked = self.clock()
        return plan, tracks

    def _classify(self, run: _Run, frame: Frame, work, chosen: list, wall: int, t: FrameTimes) -> None:
        """Classify the chosen tracks in one batch and smooth their labels."""
        t.no_classification()
        if not chosen:
            return
        batch = preprocess_faces(to_gray(work), [tr.int_box() for tr in chosen], self.classifier.margin,
                                 geometry=self.crop)
        t.preprocessed = self.clock()
        probs = self.classifier.predict(batch)
        t.classified = self.clock()
        for track, p in zip(chosen, probs):
            self._observe(run, frame, track, p, wall)
        run.counters.classifications += len(chosen)

    def _observe(self, run: _Run, frame: Frame, track, probs, wall: int) -> None:
        """A track's new probabilities: smoothed; watched for drift; an event when its label changes."""
        before = track.label
        self.smoother.observe(track, probs, run.counters.frames)
        if self.monitor is not None:
            drift = self.monitor.observe(track.label, track.confidence, wall, run.info.run_id)
            if drift is not None:
                run.counters.events += self.writer.deliver("on_event", drift)
        if track.label != before:
            ev = FaceEvent(wall, frame.index, track.track_id, track.label, before, round(track.confidence, 4),
                           track.int_box(), run.info.run_id)
            run.counters.events += self.writer.deliver("on_event", ev)

    def _write(self, run: _Run, frame: Frame, tracks: list, wall: int, scale: float) -> None:
        """The frame into the current interval (a finished interval is written) and to every sink."""
        done = run.aggregator.add(frame.timestamp_ns, tracks, wall)
        if done is not None:
            run.counters.intervals += self._emit_interval(done)
        for s in self.sinks:
            try:
                s.on_frame(frame, tracks, scale)
            except (WriteError, OSError) as exc:
                self.writer.write_failed(s, exc)
            if getattr(s, "quit", False):
                self.stop("display")

    def _account(self, run: _Run, plan: FramePlan, t: FrameTimes, n_classified: int, n_tracks: int) -> None:
        """The frame's stage times to the statistics, the scheduler and /metrics; signs of life."""
        stage_ms = t.stage_ms()
        n = run.counters
        n.time_frame(stage_ms, t.frame_ms)
        hit = self.scheduler.record(plan, stage_ms, n_classified)
        run.aggregator.budget(hit)
        n.frames += 1
        self.frames = n.frames
        if self.runtime_metrics is not None:
            self.runtime_metrics.frame(t.frame_s, stage_ms, plan.detect, n_classified, n_tracks, hit)
        if run.heartbeat.beat(t.end):
            el = (t.end - run.started_ns) * 1e-9
            st = self.scheduler.stats
            self.status(f"{n.frames} frames {n.frames / el if el else 0:.1f} FPS, {n_tracks} faces, "
                        f"budget misses {st.misses}/{st.frames}, detect scale {plan.detect_scale:.2f} "
                        f"every {plan.detect_every}" + (f", RECORDS LOST {self.records_lost}"
                                                          if self.records_lost else ""))

    def _finish(self, run: _Run, old_handlers: dict) -> None:
        run.heartbeat.stopping()
        last = run.aggregator.flush()
        if last is not None:
            run.counters.intervals += self._emit_interval(last)   # a failure is counted and said, never swallowed
        if self.writer.csv is not None:
            self.writer.export_csv(self.wall_clock())
        self._close()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)

    def _summary(self, run: _Run) -> RunSummary:
        n, st = run.counters, self.scheduler.stats
        duration = (self.clock() - run.started_ns) * 1e-9
        return RunSummary(
            source=self.source.name, model=run.info.model, detector=run.info.detector, frames=n.frames,
            duration_s=duration, fps=n.frames / duration if duration > 0 else 0.0,
            dropped_frames=self.source.dropped, faces_seen=self.tracker.total_tracks,
            frames_with_faces=n.frames_with_faces, detection_frames=n.detection_frames, detections=n.detections,
            classifications=n.classifications, labels=dict(n.labels),
            budget_ms=self.config.budget_ms, budget_hits=st.hits, budget_misses=st.misses,
            misses_by_stage=dict(st.misses_by_stage), latency={k: v.summary() for k, v in n.latency.items()},
            events_written=n.events, intervals_written=n.intervals, stopped_by=self._stopped_by,
            run_id=run.info.run_id, started_utc=run.info.started_utc, tracks_left_frame=self.tracker.left_frame,
            records_lost=self.records_lost, write_errors=tuple(self.write_errors.values()),
            unreadable_inputs=self.source.unreadable, error=self.error, uncertain_below=self.uncertain_below,
            uncertain_top=dict(n.uncertain_top), uncertain_mean_confidence=n.uncertain_mean_confidence)

    def _close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        self.writer.close_sinks()
        self.source.close()
        close_log_file(self._log_handler)

    def _close_quietly(self) -> None:
        """Release what __init__ made before it failed (the failure itself is what gets raised)."""
        for s in self.sinks:
            try:
                s.close()
            except (WriteError, OSError, sqlite3.Error) as exc:
                log.error("closing %s after a failed start: %s", type(s).__name__, exc)
        self.source.close() if hasattr(self, "source") else None
        close_log_file(self._log_handler)


def run(config: RuntimeConfig, status: Callable[[str], None] | None = None,
        deployment: Deployment | None = None) -> RunSummary:
    """Build a pipeline from ``config`` and run it (the API behind ``emoedge run``)."""
    return Pipeline(config, deployment=deployment, status=status).run()
