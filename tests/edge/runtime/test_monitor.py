"""The device monitor (emoedge.edge.runtime.monitor): drift on synthetic streams, the loopback-only /metrics and
/health of a running pipeline."""

import fcntl
import json
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from fakes import FakeClassifier, FakeClock, FakeDetector, SyntheticSource
from prometheus_client.parser import text_string_to_metric_families

from emoedge.edge.faces.detect import Face
from emoedge.edge.outputs.sinks import Sink
from emoedge.edge.runtime.config import RuntimeConfig
from emoedge.edge.runtime.monitor import DriftMonitor, MetricsServer, RuntimeMetrics, js_divergence
from emoedge.edge.runtime.pipeline import Pipeline
from emoedge.edge.runtime.sources import open_source

NAMES = ("happy", "neutral", "sad")

REF = {"happy": 0.3, "neutral": 0.5, "sad": 0.2}


def _stream(rng, dist, n):
    return rng.choice(NAMES, size=n, p=[dist[c] for c in NAMES])


def test_drift_fires_on_a_shifted_stream_and_stays_quiet_on_an_unshifted_one():
    rng = np.random.default_rng(0)
    quiet = DriftMonitor(NAMES, REF, window=300, threshold=0.05)
    events = [quiet.observe(lab, 0.8, i) for i, lab in enumerate(_stream(rng, REF, 3000))]
    assert not any(events) and quiet.js < 0.05
    mon = DriftMonitor(NAMES, REF, window=300, threshold=0.05)
    for i, lab in enumerate(_stream(rng, REF, 600)):
        assert mon.observe(lab, 0.8, i) is None
    shifted = {"happy": 0.05, "neutral": 0.15, "sad": 0.8}
    evs = [e for i, lab in enumerate(_stream(rng, shifted, 600)) if (e := mon.observe(lab, 0.8, 1000 + i))]
    assert evs and evs[0].kind == "drift" and evs[0].js_divergence > 0.05 and mon.drifting
    back = [e for i, lab in enumerate(_stream(rng, REF, 600)) if (e := mon.observe(lab, 0.8, 5000 + i))]
    assert back and back[-1].kind == "recovered" and not mon.drifting
    assert json.dumps(evs[0].to_dict())


def test_drift_on_abstention():
    mon = DriftMonitor(NAMES, REF, window=100, threshold=0.5, reference_abstention=0.1, abstention_margin=0.2)
    ev = None
    for i in range(200):
        ev = mon.observe("uncertain" if i % 2 else "neutral", 0.3, i) or ev
    assert ev is not None and ev.abstention_rate >= 0.5


def _non_loopback_ipv4():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _, name in socket.if_nameindex():
            if name == "lo":
                continue
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
            except OSError:
                continue
            ip = socket.inet_ntoa(packed[20:24])
            if not ip.startswith("127."):
                return ip
    finally:
        s.close()
    return None


def test_metrics_endpoint_answers_on_loopback_only():
    mon = DriftMonitor(NAMES, REF, window=2)
    for i in range(2):
        mon.observe("happy" if i else "sad", 0.9, i)
    m = RuntimeMetrics(("capture",), lambda: 0.25, mon)
    for _ in range(7):
        m.frame(0.004, {"capture": 1.0}, detected=False, classified=2, faces=2, within_budget=True)
    health = {"frames": 7, "problems": [], "drifting": False}
    srv = MetricsServer(lambda: health, m.registry, port=0)
    try:
        host, port = srv.address
        assert host == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "emoedge_frames_total 7.0" in body and 'emoedge_label_share{label="happy"} 0.5' in body
        assert "emoedge_last_frame_age_seconds 0.25" in body
        ok = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
        assert ok["status"] == "ok" and ok["frames"] == 7 and ok["problems"] == []
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=5)
        assert exc.value.code == 404
        other = _non_loopback_ipv4()
        if other is None:
            pytest.skip("no non-loopback IPv4 interface to try")
        with pytest.raises(OSError):
            socket.create_connection((other, port), timeout=2).close()
    finally:
        srv.close()


def test_metrics_follow_prometheus_conventions():
    """Counters end in _total, times are in seconds; each RuntimeMetrics has its own registry."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    a = RuntimeMetrics(("capture", "detect", "classify"), lambda: 0.0, process=False)
    b = RuntimeMetrics(("capture", "detect", "classify"), lambda: 0.0, process=False)   # no collision
    a.frame(0.040, {"capture": 2.0, "detect": 0.0, "classify": 0.0}, detected=False, classified=0, faces=0,
            within_budget=False)
    a.frame(0.003, {"capture": 1.0, "detect": 30.0, "classify": 5.0}, detected=True, classified=1, faces=1,
            within_budget=True)
    a.records_lost.inc()
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(a.registry).decode())}
    kinds = {n: f.type for n, f in fams.items() if not n.endswith("_created")}   # the client's creation times
    assert kinds == {"emoedge_frames": "counter", "emoedge_classifications": "counter",
                     "emoedge_budget_misses": "counter", "emoedge_records_lost": "counter",
                     "emoedge_faces_tracked": "gauge", "emoedge_last_frame_age_seconds": "gauge",
                     "emoedge_frame_latency_seconds": "histogram", "emoedge_stage_latency_seconds": "histogram"}
    v = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    assert v[("emoedge_frames_total", ())] == 2 and v[("emoedge_budget_misses_total", ())] == 1
    assert v[("emoedge_classifications_total", ())] == 1 and v[("emoedge_records_lost_total", ())] == 1
    assert v[("emoedge_frame_latency_seconds_sum", ())] == pytest.approx(0.043)
    assert v[("emoedge_frame_latency_seconds_bucket", (("le", "0.005"),))] == 1
    assert v[("emoedge_frame_latency_seconds_bucket", (("le", "1.0"),))] == 2
    stage = {k[1][0][1]: val for k, val in v.items()
             if k[0] == "emoedge_stage_latency_seconds_count"}
    assert stage == {"capture": 2, "detect": 1, "classify": 1}     # a stage counts only where it ran
    assert v[("emoedge_stage_latency_seconds_sum", (("stage", "detect"),))] == pytest.approx(0.030)
    assert b"emoedge_frames_total 0.0" in generate_latest(b.registry)


def test_drift_does_not_flap_at_the_threshold():
    """A window hovering at the threshold raised 42 drift/recovered pairs in a 12,000-frame run;
    with hysteresis it recovers only below 0.6 of the threshold (102 events here without it)."""
    rng = np.random.default_rng(1)
    near = {"happy": 0.12, "neutral": 0.5, "sad": 0.38}          # JS ~ threshold from REF
    mon = DriftMonitor(NAMES, REF, window=400, threshold=js_divergence(
        np.array([near[c] for c in NAMES]), np.array([REF[c] for c in NAMES])))
    evs = [e for i, lab in enumerate(_stream(rng, near, 8000)) if (e := mon.observe(lab, 0.8, i))]
    assert len(evs) <= 4, [e.kind for e in evs]


class Scraper(Sink):
    """Reads /metrics on the given frames, from inside the run (the endpoint closes with the run)."""

    def __init__(self, at, fail_intervals=False, headers=None):
        self.at, self.fail_intervals, self.headers = set(at), fail_intervals, headers or {}
        self.pipeline, self.bodies = None, {}

    def on_frame(self, frame, tracks, scale):
        if frame.index in self.at:
            port = self.pipeline.metrics.address[1]
            req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=self.headers)
            with urllib.request.urlopen(req, timeout=5) as r:
                self.bodies[frame.index] = (r.headers["Content-Type"], r.read().decode())

    def on_interval(self, summary):
        if self.fail_intervals:
            raise OSError(28, "No space left on device")


def _samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_running_pipeline_serves_its_metrics():
    scraper = Scraper(at=[9], fail_intervals=True)
    clock = FakeClock()
    p = Pipeline(RuntimeConfig(metrics_port=0, budget_ms=10, detect_every=5, adapt=False, interval_s=0.001,
                               status_every_s=0),
                 source=SyntheticSource(clock, 12), detector=FakeDetector(clock, [Face(5, 5, 50, 50)], 20),
                 classifier=FakeClassifier(), clock=clock, sinks=[scraper])
    scraper.pipeline = p
    s = p.run()
    ctype, body = scraper.bodies[9]
    assert ctype.startswith("text/plain")
    v = _samples(body)
    assert v[("emoedge_frames_total", ())] == 9               # frames 0..8 were done when frame 9 reached sinks
    assert v[("emoedge_faces_tracked", ())] == 1
    assert v[("emoedge_classifications_total", ())] >= 1
    assert v[("emoedge_budget_misses_total", ())] == 2       # the 20 ms detections on frames 0 and 5
    assert v[("emoedge_records_lost_total", ())] >= 1        # intervals that could not be written
    assert v[("emoedge_frame_latency_seconds_count", ())] == 9
    assert v[("emoedge_stage_latency_seconds_count", (("stage", "detect"),))] == 2
    assert v[("emoedge_stage_latency_seconds_sum", (("stage", "detect"),))] == pytest.approx(0.040)
    assert v[("emoedge_stage_latency_seconds_count", (("stage", "capture"),))] == 9
    assert v[("emoedge_last_frame_age_seconds", ())] >= 0
    assert v[("process_resident_memory_bytes", ())] > 0     # ProcessCollector in the same registry
    assert s.budget_misses == 3 and s.records_lost >= v[("emoedge_records_lost_total", ())]
    assert ("emoedge_drifting", ()) not in v                 # no model manifest: drift monitoring is off


def test_drift_gauges_with_a_shipped_model_and_openmetrics_on_request():
    scraper = Scraper(at=[2], headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    p = Pipeline(RuntimeConfig(metrics_port=0, model="fast", status_every_s=0), source=open_source("demo"),
                 sinks=[scraper])
    scraper.pipeline = p
    p.run(max_frames=3)
    ctype, body = scraper.bodies[2]
    assert ctype.startswith("application/openmetrics-text") and body.rstrip().endswith("# EOF")
    v = _samples(body)
    assert v[("emoedge_drifting", ())] == 0 and 0 <= v[("emoedge_drift_js_divergence", ())] <= 1
    shares = {k[1][0][1] for k in v if k[0] == "emoedge_label_share"}
    assert shares == set(p.class_names)


def test_two_pipelines_in_one_process_do_not_collide():
    clock = FakeClock()
    ps = [Pipeline(RuntimeConfig(metrics_port=0, status_every_s=0), source=SyntheticSource(clock, 3),
                   detector=FakeDetector(clock, [], 1), classifier=FakeClassifier(), clock=clock, sinks=[])
          for _ in range(2)]
    try:
        assert ps[0].runtime_metrics.registry is not ps[1].runtime_metrics.registry
        ps[0].run()
        port = ps[1].metrics.address[1]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert _samples(body)[("emoedge_frames_total", ())] == 0
    finally:
        ps[1]._close()


def test_without_the_endpoint_prometheus_client_is_not_loaded():
    code = ("import sys; from emoedge.edge.runtime.config import RuntimeConfig; "
            "from emoedge.edge.runtime.pipeline import Pipeline; "
            "s = Pipeline(RuntimeConfig(model='fast', status_every_s=0)).run(max_frames=2); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('prometheus_client', 'http', 'ssl')]; "
            "print(s.frames, bad); sys.exit(1 if bad or s.frames != 2 else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_metrics_port_in_use_names_the_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        with pytest.raises(OSError, match=f"metrics endpoint 127.0.0.1:{port} .*cannot listen"):
            Pipeline(RuntimeConfig(metrics_port=port, model="fast"), source=open_source("demo"))
    finally:
        s.close()


def test_health_is_unhealthy_while_no_frames_come():
    clock = FakeClock()
    p = Pipeline(RuntimeConfig(metrics_port=0, stale_after_s=5), source=SyntheticSource(clock, 1),
                 detector=FakeDetector(clock, [], 1), classifier=FakeClassifier(), clock=clock)
    try:
        port = p.metrics.address[1]
        ok = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
        assert ok["status"] == "ok"
        clock.advance_ms(6000)                            # the camera has been silent for 6 s
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
        assert exc.value.code == 503
        body = json.loads(exc.value.read())
        assert body["status"] == "unhealthy" and body["problems"][0].startswith("stale: no frame for 6.0 s")
    finally:
        p._close()
