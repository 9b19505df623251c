"""The on-device pipeline: source -> detect (every N frames) / track -> classify (capped,
rotating) -> smooth -> sinks, under a fixed per-frame latency budget.

All resources (source, detector, interpreter, sinks) are created once, in ``__init__``, never in
the frame loop. ``run()`` returns a typed summary; Ctrl-C / SIGTERM (or ``stop()``) end the loop
cleanly and every sink is flushed and closed.
"""

from __future__ import annotations

import logging
import logging.handlers
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from emoedge.core.errors import BadInputError, WriteError
from emoedge.core.preprocess import IDENTITY, preprocess_faces, to_gray
from emoedge.core.shipped import read_manifest, resolve_model
from emoedge.edge.faces.detect import make_detector
from emoedge.edge.faces.tracking import DEFAULT_UNCERTAIN_BELOW, UNCERTAIN, EmaSmoother, IoUTracker
from emoedge.edge.inference.classify import FaceClassifier
from emoedge.edge.outputs.overlay import DisplaySink, VideoSink
from emoedge.edge.outputs.records import Aggregator, FaceEvent, IntervalSummary, RunInfo
from emoedge.edge.outputs.sinks import DiskFloor, JsonlSink, Sink, SqliteSink, export_csv
from emoedge.edge.runtime.config import Deployment, RuntimeConfig
from emoedge.edge.runtime.monitor import DriftMonitor, MetricsServer, RuntimeMetrics
from emoedge.edge.runtime.scheduler import STAGES, BudgetScheduler
from emoedge.edge.runtime.sdnotify import Notifier
from emoedge.edge.runtime.sources import FrameSource, SourceError, open_source
from emoedge.edge.runtime.stats import LatencyStats, RunSummary

log = logging.getLogger("emoedge.edge.runtime.pipeline")

LAWFUL_USE = ("the EU AI Act (Regulation (EU) 2024/1689, Article 5(1)(f)) prohibits emotion recognition in "
              "workplaces and education institutions since 2 February 2025, except for medical or safety reasons; "
              "see the README's 'Lawful use'")


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
        self._log_handler = self._make_log_file()
        if c.purpose or c.jurisdiction:
            log.warning("deployment purpose: %s; jurisdiction: %s (stored with every record)", c.purpose or "-",
                        c.jurisdiction or "-")
        self.source = source or open_source(c.source, clock=clock, realtime=c.realtime, width=c.width,
                                            height=c.height, fps=c.fps, lores=(c.lores_width, c.lores_height),
                                            loop=c.loop)
        self.sinks: list[Sink] = []
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
            self.records_lost = 0
            self._failing: dict[int, str] = {}     # sink id -> its current write problem
            self.write_errors: dict[str, str] = {}  # file -> first problem, for the summary
            if sinks is None:
                floor = DiskFloor(c.min_free_mb)
                if c.events:
                    self.sinks.append(JsonlSink(c.events, floor, int(c.events_max_mb * 2**20), c.events_keep))
                if c.db:
                    self.sinks.append(SqliteSink(c.db, floor, c.retention_days))
                if c.mqtt:
                    self.sinks.append(self._make_mqtt_sink())
                if c.video_out:
                    fps = self.source.fps or c.fps or 15.0
                    self.sinks.append(VideoSink(c.video_out, fps=fps, timed=not self.source.independent_frames))
                if c.display or c.fullscreen:
                    self.sinks.append(DisplaySink(fullscreen=c.fullscreen))
            else:
                self.sinks = list(sinks)
            self._csv = self._csv_export_path()
            self._next_export_ns = 0
            if c.metrics_port is not None:
                self.runtime_metrics = RuntimeMetrics(STAGES, self._last_frame_age_s, self.monitor)
                self.metrics = MetricsServer(self._health_snapshot, self.runtime_metrics.registry, c.metrics_host,
                                             c.metrics_port)
        except BaseException:
            self._close_quietly()
            raise

    # -- set-up helpers -----------------------------------------------------------------------
    def _make_mqtt_sink(self):
        """Interval summaries to the broker through a store-and-forward outbox (emoedge.edge.outputs.mqtt)."""
        from emoedge.edge.outputs.mqtt import MqttSink, MqttTarget, default_outbox, with_credentials

        c = self.config
        target = with_credentials(MqttTarget.parse(c.mqtt), c.mqtt_username, c.mqtt_password_file)
        outbox = Path(c.mqtt_outbox) if c.mqtt_outbox else default_outbox(c.db)
        sink = MqttSink(target, outbox, device=c.mqtt_device, room=c.mqtt_room, ca_file=c.mqtt_ca_file,
                        flush_timeout_s=c.mqtt_flush_s)
        log.info("MQTT: interval summaries to %s as device %r (topics %s, %s), outbox %s", target, sink.device,
                 sink.intervals_topic, sink.status_topic, outbox)
        return sink

    def _make_log_file(self) -> logging.Handler | None:
        """The deployment's rotated log file (warnings and errors) in its data folder."""
        d = self.deployment
        if d is None or not d.log_file:
            return None
        path = Path(d.data_dir) / d.log_file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            h = logging.handlers.RotatingFileHandler(path, maxBytes=int(d.log_max_mb * 2**20),
                                                     backupCount=d.log_keep, encoding="utf-8")
        except OSError as exc:
            raise WriteError(f"{path}: cannot open the log file (deployment.log_file): {exc.strerror or exc}") from exc
        h.setLevel(logging.INFO)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("emoedge").addHandler(h)
        if logging.getLogger("emoedge").level == logging.NOTSET or logging.getLogger("emoedge").level > logging.INFO:
            logging.getLogger("emoedge").setLevel(logging.INFO)
        return h

    def _csv_export_path(self) -> Path | None:
        d = self.deployment
        if d is None or not d.export_csv:
            return None
        if not self.config.db:
            raise BadInputError("deployment.export_csv: the CSV is exported from the SQLite summaries: set runtime.db")
        path = Path(d.data_dir) / "summaries.csv"
        try:  # a data folder that cannot be written is said at start, not after a day of frames
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WriteError(f"{path.parent}: cannot create the data folder (deployment.data_dir): "
                             f"{exc.strerror or exc}") from exc
        return path

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
        problems += [f"storage: {msg}" for msg in list(self._failing.values())]
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

    # -- writing records ------------------------------------------------------------------------
    def _deliver(self, method: str, item) -> bool:
        """Give ``item`` to every sink that takes it. A sink that cannot write (disk full, below the
        free-space floor, I/O error) loses this record, which is counted and said once per outage;
        the run goes on and the sink is tried again with the next record. Returns whether the record
        of truth holds it (the summaries database where one takes such records, else any sink that
        takes them), so a count of records written is true of that file (no sink takes it: True, the
        count is of records made)."""
        takers = [s for s in self.sinks if getattr(type(s), method, None) is not getattr(Sink, method)]
        truth = [s for s in takers if s.record_of_truth] or takers
        written = False
        for s in takers:
            try:
                getattr(s, method)(item)
            except (WriteError, OSError, sqlite3.Error) as exc:
                self._write_failed(s, exc)
                continue
            written = written or s in truth
            if id(s) in self._failing:
                log.warning("%s: writing again (%d record(s) lost in all so far)", getattr(s, "path", s),
                            self.records_lost)
                del self._failing[id(s)]
        return written or not takers

    def _lost_record(self) -> None:
        self.records_lost += 1
        if self.runtime_metrics is not None:
            self.runtime_metrics.records_lost.inc()

    def _write_failed(self, sink: Sink, exc: BaseException) -> None:
        self._lost_record()
        msg = str(exc) if isinstance(exc, WriteError) else f"{getattr(sink, 'path', type(sink).__name__)}: {exc}"
        where = str(getattr(sink, "path", type(sink).__name__))
        self.write_errors.setdefault(where, msg)
        if id(sink) not in self._failing:
            self._failing[id(sink)] = msg
            log.error("%s; records are not written until this is fixed (the run goes on; /health says so)", msg)

    def _emit_interval(self, summary: IntervalSummary) -> int:
        now = self.wall_clock()
        for s in self.sinks:
            if isinstance(s, SqliteSink):
                try:
                    s.prune(now)
                except WriteError as exc:
                    self._write_failed(s, exc)
        stored = self._deliver("on_interval", summary)
        if self._csv is not None and now >= self._next_export_ns:
            self._export_csv(now)
        return int(stored)

    def _export_csv(self, now: int) -> None:
        self._next_export_ns = now + int(self.deployment.export_every_min * 60e9)
        try:
            DiskFloor(self.config.min_free_mb).check(self._csv)
            export_csv(self.config.db, self._csv)
        except (WriteError, OSError, sqlite3.Error) as exc:
            self._lost_record()
            self.write_errors.setdefault(str(self._csv), str(exc))
            log.error("%s", exc)

    # -- the frame loop -------------------------------------------------------------------------
    def run(self, max_frames: int | None = None) -> RunSummary:
        c = self.config
        max_frames = max_frames if max_frames is not None else c.max_frames
        old_handlers = self._install_signals()
        stats = {s: LatencyStats() for s in STAGES + ("frame",)}
        labels: Counter = Counter()
        uncertain_top: Counter = Counter()   # the most likely class of the face-frames labelled uncertain
        uncertain_conf = 0.0
        frames = frames_with_faces = classifications = events = intervals = 0
        detection_frames = detections = 0
        model_name = str(getattr(self.classifier, "model_path", "?"))
        det_name = getattr(self.detector, "name", type(self.detector).__name__)
        run = RunInfo.new(self.wall_clock(), source=self.source.name, model=model_name, detector=det_name,
                          purpose=c.purpose, jurisdiction=c.jurisdiction)
        aggregator = Aggregator(self.class_names, c.interval_s, run.run_id)
        t_start = self.clock()
        self._started_ns = t_start
        last_status = last_pet = t_start
        ms = 1e-6
        notifier = Notifier()
        prom = self.runtime_metrics
        for s in self.sinks:
            if isinstance(s, SqliteSink):
                try:
                    s.prune(run.started_unix_ns)
                except WriteError as exc:
                    self._write_failed(s, exc)
        self._deliver("on_start", run)
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
                    log.error("%s; stopping (everything recorded so far is kept)", exc)
                    break
                t1 = self.clock()
                if frame is None:
                    if not self._stop.is_set():
                        self._stopped_by = "end"
                    break
                self._last_frame_ns = t1
                wall = self.wall_clock()
                work = frame.gray if frame.gray is not None else frame.image
                size = (work.shape[1], work.shape[0])
                scale = frame.image.shape[1] / work.shape[1]
                if self.source.independent_frames or frame.discontinuity:  # unrelated to the last frame
                    self.tracker.restart()
                plan = self.scheduler.plan(frames, self.tracker.tracks)
                detect_ms = 0.0
                if plan.detect:
                    faces = self.detector.detect(work, plan.detect_scale)
                    t2 = self.clock()
                    detection_frames += 1
                    detections += len(faces)
                    detect_ms = (t2 - t1) * ms
                    tracks = self.tracker.update(faces, frames, size)
                else:
                    t2 = t1
                    tracks = self.tracker.follow(frames, size)
                t3 = self.clock()
                chosen = self.scheduler.choose(tracks, plan.max_faces)
                pre_ms = cls_ms = 0.0
                if chosen:
                    gray = to_gray(work)
                    batch = preprocess_faces(gray, [t.int_box() for t in chosen], self.classifier.margin,
                                             geometry=self.crop)
                    t4 = self.clock()
                    probs = self.classifier.predict(batch)
                    t5 = self.clock()
                    pre_ms, cls_ms = (t4 - t3) * ms, (t5 - t4) * ms
                    for t, p in zip(chosen, probs):
                        before = t.label
                        self.smoother.observe(t, p, frames)
                        if self.monitor is not None:
                            drift = self.monitor.observe(t.label, t.confidence, wall, run.run_id)
                            if drift is not None:
                                events += self._deliver("on_event", drift)
                        if t.label != before:
                            ev = FaceEvent(wall, frame.index, t.track_id, t.label, before, round(t.confidence, 4),
                                           t.int_box(), run.run_id)
                            events += self._deliver("on_event", ev)
                    classifications += len(chosen)
                t6 = self.clock()
                if tracks:
                    frames_with_faces += 1
                for t in tracks:
                    if t.label is not None:
                        labels[t.label] += 1
                        if t.label == UNCERTAIN:
                            uncertain_top[self.class_names[int(np.argmax(t.probs))]] += 1
                            uncertain_conf += t.confidence
                done = aggregator.add(frame.timestamp_ns, tracks, wall)
                if done is not None:
                    intervals += self._emit_interval(done)
                for s in self.sinks:
                    try:
                        s.on_frame(frame, tracks, scale)
                    except (WriteError, OSError) as exc:
                        self._write_failed(s, exc)
                    if getattr(s, "quit", False):
                        self.stop("display")
                t7 = self.clock()
                stage_ms = {"capture": (t1 - t0) * ms, "detect": detect_ms, "track": (t3 - t2) * ms,
                            "preprocess": pre_ms, "classify": cls_ms, "sinks": (t7 - t6) * ms}
                for k, v in stage_ms.items():
                    stats[k].add(v)
                stats["frame"].add((t7 - t0) * ms)
                hit = self.scheduler.record(plan, stage_ms, len(chosen))
                aggregator.budget(hit)
                frames += 1
                self.frames = frames
                if prom is not None:
                    prom.frame((t7 - t0) * 1e-9, stage_ms, plan.detect, len(chosen), len(tracks), hit)
                if t7 - last_pet >= 1_000_000_000:  # systemd watchdog: frames are flowing
                    notifier.notify("WATCHDOG=1")
                    last_pet = t7
                if self.status and c.status_every_s and (t7 - last_status) * 1e-9 >= c.status_every_s:
                    last_status = t7
                    el = (t7 - t_start) * 1e-9
                    st = self.scheduler.stats
                    self.status(f"{frames} frames {frames / el if el else 0:.1f} FPS, {len(tracks)} faces, "
                                f"budget misses {st.misses}/{st.frames}, detect scale {plan.detect_scale:.2f} "
                                f"every {plan.detect_every}" + (f", RECORDS LOST {self.records_lost}"
                                                                  if self.records_lost else ""))
        except BaseException:
            self._stopped_by = "error"
            raise
        finally:
            notifier.notify("STOPPING=1")
            notifier.close()
            last = aggregator.flush()
            if last is not None:
                intervals += self._emit_interval(last)   # a failure is counted and said, never swallowed
            if self._csv is not None:
                self._export_csv(self.wall_clock())
            self._close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
        duration = (self.clock() - t_start) * 1e-9
        st = self.scheduler.stats
        return RunSummary(
            source=self.source.name, model=model_name, detector=det_name, frames=frames,
            duration_s=duration, fps=frames / duration if duration > 0 else 0.0,
            dropped_frames=self.source.dropped, faces_seen=self.tracker.total_tracks,
            frames_with_faces=frames_with_faces, detection_frames=detection_frames, detections=detections,
            classifications=classifications, labels=dict(labels),
            budget_ms=c.budget_ms, budget_hits=st.hits, budget_misses=st.misses,
            misses_by_stage=dict(st.misses_by_stage), latency={k: v.summary() for k, v in stats.items()},
            events_written=events, intervals_written=intervals, stopped_by=self._stopped_by,
            run_id=run.run_id, started_utc=run.started_utc, tracks_left_frame=self.tracker.left_frame,
            records_lost=self.records_lost, write_errors=tuple(self.write_errors.values()),
            unreadable_inputs=self.source.unreadable, error=self.error, uncertain_below=self.uncertain_below,
            uncertain_top=dict(uncertain_top),
            uncertain_mean_confidence=uncertain_conf / max(1, labels.get(UNCERTAIN, 0)))

    def _close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        for s in self.sinks:
            try:
                s.close()
            except (WriteError, OSError, sqlite3.Error) as exc:  # keep closing the others; counted and said
                self._write_failed(s, exc)
        self.source.close()
        if self._log_handler is not None:
            logging.getLogger("emoedge").removeHandler(self._log_handler)
            self._log_handler.close()

    def _close_quietly(self) -> None:
        """Release what __init__ made before it failed (the failure itself is what gets raised)."""
        for s in self.sinks:
            try:
                s.close()
            except (WriteError, OSError, sqlite3.Error) as exc:
                log.error("closing %s after a failed start: %s", type(s).__name__, exc)
        self.source.close() if hasattr(self, "source") else None
        if self._log_handler is not None:
            logging.getLogger("emoedge").removeHandler(self._log_handler)
            self._log_handler.close()


def run(config: RuntimeConfig, status: Callable[[str], None] | None = None,
        deployment: Deployment | None = None) -> RunSummary:
    """Build a pipeline from ``config`` and run it (the API behind ``emoedge run``)."""
    return Pipeline(config, deployment=deployment, status=status).run()
