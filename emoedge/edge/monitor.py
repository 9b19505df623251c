"""On-device monitoring: a rolling distribution of predicted classes, confidence and abstention
compared with the model card's reference (drift events), and a local health/metrics endpoint in
the Prometheus text format, bound to 127.0.0.1 unless configured otherwise."""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from emoedge.edge.tracking import UNCERTAIN

log = logging.getLogger(__name__)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two distributions."""
    p = np.asarray(p, dtype=np.float64) + 1e-12
    q = np.asarray(q, dtype=np.float64) + 1e-12
    p /= p.sum()
    q /= q.sum()
    m = (p + q) / 2
    return float(0.5 * (p * np.log2(p / m)).sum() + 0.5 * (q * np.log2(q / m)).sum())


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


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/health`` (JSON) from a snapshot function.

    ``/health`` answers 200 with ``"status": "ok"`` while frames flow and records are written,
    and 503 with the problems otherwise: ``stale`` (no frame for ``stale_after_s``: a camera that
    is down), ``storage`` (records not being written: disk full or below the floor)."""

    def __init__(self, snapshot: Callable[[], dict], host: str = "127.0.0.1", port: int = 9108):
        self.snapshot = snapshot
        outer = self

        import http.server  # here, not at import: it loads ssl (~4 MB RSS) into every runtime

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/metrics"):
                    body = render_prometheus(outer.snapshot()).encode()
                    ctype = "text/plain; version=0.0.4"
                elif self.path.startswith("/health"):
                    snap = outer.snapshot()
                    problems = list(snap.get("problems", []))
                    body = json.dumps({"status": "ok" if not problems else "unhealthy", "problems": problems,
                                       "frames": snap.get("frames", 0),
                                       "last_frame_age_s": snap.get("last_frame_age_s"),
                                       "records_lost": snap.get("records_lost", 0),
                                       "drifting": snap.get("drifting", False)}).encode()
                    ctype = "application/json"
                    self.send_response(200 if not problems else 503)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
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
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def render_prometheus(s: dict) -> str:
    lines = []

    def metric(name, kind, help_, value, labels=None):
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        if labels is None:
            lines.append(f"{name} {value}")
        else:
            for k, v in labels.items():
                lines.append(f'{name}{{label="{k}"}} {v}')

    metric("emoedge_frames_total", "counter", "Frames processed.", s.get("frames", 0))
    metric("emoedge_faces_tracked", "gauge", "Faces tracked on the last frame.", s.get("faces", 0))
    metric("emoedge_classifications_total", "counter", "Faces classified.", s.get("classifications", 0))
    metric("emoedge_budget_misses_total", "counter", "Frames over the latency budget.", s.get("budget_misses", 0))
    metric("emoedge_records_lost_total", "counter", "Records that could not be written.", s.get("records_lost", 0))
    metric("emoedge_last_frame_age_seconds", "gauge", "Seconds since the last frame.", s.get("last_frame_age_s", 0.0))
    metric("emoedge_frame_latency_ms", "gauge", "Last frame's latency in milliseconds.", s.get("frame_ms", 0.0))
    metric("emoedge_drift_js_divergence", "gauge", "JS divergence of predicted classes from the reference.",
           s.get("js", 0.0))
    metric("emoedge_drifting", "gauge", "1 while the prediction distribution has drifted.", int(s.get("drifting", False)))
    metric("emoedge_label_share", "gauge", "Share of recent predictions per label.", None, s.get("shares", {}))
    return "\n".join(lines) + "\n"
