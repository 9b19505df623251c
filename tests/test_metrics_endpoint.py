"""/metrics of a running pipeline: prometheus_client's exposition from the pipeline's own registry."""

import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_longrun import FakeClassifier
from test_runtime import FakeClock, FakeDetector, SyntheticSource

from emoedge.edge.faces.detect import Face
from emoedge.edge.outputs.sinks import Sink
from emoedge.edge.runtime.config import RuntimeConfig
from emoedge.edge.runtime.pipeline import Pipeline
from emoedge.edge.runtime.sources import open_source


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
