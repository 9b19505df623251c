"""Drift detection on synthetic streams and the loopback-only metrics endpoint."""

import fcntl
import json
import socket
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest

from emoedge.edge.runtime.monitor import DriftMonitor, MetricsServer, RuntimeMetrics, js_divergence

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


def test_js_divergence_bounds():
    assert js_divergence([1, 0], [1, 0]) == pytest.approx(0, abs=1e-9)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1, abs=1e-6)


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
