"""On-device monitoring: a rolling distribution of predicted classes, confidence and abstention
compared with the model card's reference (drift events), and a local endpoint bound to 127.0.0.1
unless configured otherwise: ``/metrics`` (Prometheus exposition by ``prometheus_client``, from a
registry of the pipeline's own) and ``/health`` (JSON).

``prometheus_client`` (and with it ``http.server`` and ``ssl``, ~7 MB RSS) is imported only when
the endpoint is on: a runtime without ``--metrics-port`` does not load it."""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from emoedge.core.divergence import js_divergence  # noqa: F401  (re-exported: the drift measure)
from emoedge.edge.faces.tracking import UNCERTAIN

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftEvent:
    time_unix_ns: int             # wall clock (UTC)
    kind: str                     # drift | recovered
    js_divergence: float
    abstention_rate: float
    mean_confidence: float
    window: int
    distribution: dict[str, float]

    run_id: str = ""

    def to_dict(self) -> dict:
        from datetime import datetime, timezone

        utc = datetime.fromtimestamp(self.time_unix_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
        return {"type": self.kind, "time_utc": utc[:-3] + "Z",
                **{k: v for k, v in self.__dict__.items() if k != "kind"}}


class DriftMonitor:
    """Rolling window of (label, confidence) observations, one per classification.

    Fires a ``drift`` event when the window's predicted-class distribution (without
    ``uncertain``) is further than ``threshold`` (JS divergence) from the reference, or the
    abstention rate exceeds the reference's by ``abstention_margin``; a ``recovered`` event when
    it is back below ``recover_ratio`` of both (hysteresis: a window sitting at the threshold does
    not flap). Needs ``window`` observations before judging; counts are kept incrementally, so an
    observation costs the same whatever the window.
    """

    def __init__(self, class_names: Sequence[str], reference: dict[str, float], window: int = 500,
                 threshold: float = 0.1, reference_abstention: float = 0.0, abstention_margin: float = 0.25,
                 recover_ratio: float = 0.6):
        self.class_names = tuple(class_names)
        self.reference = np.array([reference.get(c, 0.0) for c in self.class_names], dtype=np.float64)
        if self.reference.sum() <= 0:
            raise ValueError("the drift reference distribution is empty")
        self.window = window
        self.threshold = threshold
        self.reference_abstention = reference_abstention
        self.abstention_margin = abstention_margin
        self.recover_ratio = recover_ratio
        self._obs: deque = deque(maxlen=window)
        self._counts: dict[str, int] = {}
        self._conf_sum = 0.0
        self.drifting = False
        self.js = 0.0

    def distribution(self) -> dict[str, float]:
        n = max(1, len(self._obs) - self._counts.get(UNCERTAIN, 0))
        return {c: self._counts.get(c, 0) / n for c in self.class_names}

    def observe(self, label: str, confidence: float, time_unix_ns: int, run_id: str = "") -> DriftEvent | None:
        if len(self._obs) == self.window:
            old, old_conf = self._obs[0]
            self._counts[old] -= 1
            self._conf_sum -= old_conf
        self._obs.append((label, confidence))
        self._counts[label] = self._counts.get(label, 0) + 1
        self._conf_sum += confidence
        if len(self._obs) < self.window:
            return None
        dist = self.distribution()
        self.js = js_divergence(np.array([dist[c] for c in self.class_names]), self.reference)
        abst = self._counts.get(UNCERTAIN, 0) / len(self._obs)
        conf = self._conf_sum / len(self._obs)
        k = self.recover_ratio if self.drifting else 1.0
        bad = self.js > k * self.threshold or abst > self.reference_abstention + k * self.abstention_margin
        if bad != self.drifting:
            self.drifting = bad
            ev = DriftEvent(time_unix_ns, "drift" if bad else "recovered", self.js, abst, conf, len(self._obs), dist,
                            run_id)
            (log.warning if bad else log.info)("%s: JS divergence %.3f (threshold %.3f), abstention %.1f%%",
                                               ev.kind, self.js, self.threshold, 100 * abst)
            return ev
        return None


# Latency buckets (seconds), 1 ms .. 1 s: 1-2-5 steps plus the budgets of 30 and 15 FPS (33, 66 ms)
# and 1/3 s, so "within a 30/15 FPS budget" is one bucket and a p95 is read within a step.
LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.033, 0.05, 0.066, 0.1, 0.15, 0.2, 0.333, 0.5, 1.0)


class RuntimeMetrics:
    """The pipeline's Prometheus metrics, in a ``CollectorRegistry`` of its own (not the global
    one: several pipelines or tests in one process never collide), base units (seconds).

    Updated by the frame loop with a few counter increments and histogram observations per frame
    (:meth:`frame`); the gauges that mirror state kept elsewhere (last frame age, drift) are read
    when scraped, so they cost the frame loop nothing. Process metrics (``process_*``: CPU, RSS,
    open files) come from ``ProcessCollector`` in the same registry."""

    def __init__(self, stages: Sequence[str], last_frame_age_s: Callable[[], float],
                 drift: DriftMonitor | None = None, process: bool = True):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client.process_collector import ProcessCollector

        self.registry = r = CollectorRegistry()
        self.frames = Counter("emoedge_frames_total", "Frames processed.", registry=r)
        self.classifications = Counter("emoedge_classifications_total", "Faces classified.", registry=r)
        self.budget_misses = Counter("emoedge_budget_misses_total", "Frames over the latency budget.", registry=r)
        self.records_lost = Counter("emoedge_records_lost_total",
                                    "Records (events, intervals, video frames) that could not be written.",
                                    registry=r)
        self.faces = Gauge("emoedge_faces_tracked", "Faces tracked on the last frame.", registry=r)
        Gauge("emoedge_last_frame_age_seconds", "Seconds since the last frame came from the source.",
              registry=r).set_function(last_frame_age_s)
        self.frame_latency = Histogram("emoedge_frame_latency_seconds", "Time from reading a frame to its sinks done.",
                                       buckets=LATENCY_BUCKETS_S, registry=r)
        stage = Histogram("emoedge_stage_latency_seconds",
                          "Time of a pipeline stage on the frames it ran on (detect: detection frames; preprocess, "
                          "classify: frames with faces to classify).", ["stage"], buckets=LATENCY_BUCKETS_S,
                          registry=r)
        self._stage = {s: stage.labels(stage=s) for s in stages}   # children bound once, not per frame
        if drift is not None:   # drift monitoring on (the model's manifest has a reference distribution)
            Gauge("emoedge_drifting", "1 while the predicted-class distribution has drifted from the reference.",
                  registry=r).set_function(lambda: float(drift.drifting))
            Gauge("emoedge_drift_js_divergence", "JS divergence (base 2) of the recent predicted classes from the "
                  "model card's reference.", registry=r).set_function(lambda: drift.js)
            share = Gauge("emoedge_label_share", "Share of each label among the recent predictions (drift window, "
                          "without uncertain).", ["label"], registry=r)
            for c in drift.class_names:
                share.labels(label=c).set_function(lambda c=c: drift.distribution()[c])
        if process:
            ProcessCollector(registry=r)

    def frame(self, frame_s: float, stage_ms: dict[str, float], detected: bool, classified: int, faces: int,
              within_budget: bool) -> None:
        """One finished frame: its latency, its stages' (those that ran), counts."""
        self.frames.inc()
        self.frame_latency.observe(frame_s)
        for s, v in stage_ms.items():
            if (s == "detect" and not detected) or (s in ("preprocess", "classify") and not classified):
                continue   # the stage did not run on this frame: a 0 would hide its real latency
            self._stage[s].observe(v * 1e-3)
        if classified:
            self.classifications.inc(classified)
        self.faces.set(faces)
        if not within_budget:
            self.budget_misses.inc()


class MetricsServer:
    """``/metrics`` (Prometheus text format, or OpenMetrics when the scraper asks for it) from a
    ``prometheus_client`` registry and ``/health`` (JSON) from a health function.

    ``/health`` answers 200 with ``"status": "ok"`` while frames flow and records are written,
    and 503 with the problems otherwise: ``stale`` (no frame for ``stale_after_s``: a camera that
    is down), ``storage`` (records not being written: disk full or below the floor).

    Bound to anything but loopback, a warning names the address; a request whose ``Host`` names
    another site (DNS rebinding) is answered 421 (:mod:`emoedge.core.httpguard`)."""

    def __init__(self, health: Callable[[], dict], registry: CollectorRegistry, host: str = "127.0.0.1",
                 port: int = 9108):
        self.health = health
        self.registry = registry
        outer = self

        import http.server  # here, not at import: it loads ssl (~4 MB RSS) into every runtime

        from prometheus_client.exposition import choose_encoder

        from emoedge.core.httpguard import allowed_names, refuse_foreign_host, warn_if_exposed

        names = allowed_names(host)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if refuse_foreign_host(self, names):    # DNS rebinding: another site's name in Host
                    return
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                    self._answer(200, ctype, encoder(outer.registry))
                elif path == "/health":
                    snap = outer.health()
                    problems = list(snap.get("problems", []))
                    body = json.dumps({"status": "ok" if not problems else "unhealthy", "problems": problems,
                                       "frames": snap.get("frames", 0),
                                       "last_frame_age_s": snap.get("last_frame_age_s"),
                                       "records_lost": snap.get("records_lost", 0),
                                       "drifting": snap.get("drifting", False)}).encode()
                    self._answer(200 if not problems else 503, "application/json", body)
                else:
                    self.send_error(404)

            def _answer(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        try:
            self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OSError(exc.errno, f"metrics endpoint {host}:{port} (runtime.metrics_port): cannot listen: "
                                     f"{exc.strerror or exc}") from exc
        self.address = self.httpd.server_address
        warn_if_exposed(host, self.address[1], "the metrics endpoint (runtime.metrics_host)")
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
