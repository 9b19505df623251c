"""Run statistics (emoedge.edge.runtime.stats): constant-memory latency percentiles and the run summary."""

import numpy as np
import pytest

from emoedge.edge.runtime.stats import LatencyStats, RunSummary


def test_latency_stats_are_constant_memory_and_percentiles_within_one_percent(rng):
    st = LatencyStats()
    size = st.counts.nbytes
    values = rng.lognormal(1.0, 0.8, 200_000)
    for v in values:
        st.add(float(v))
    assert st.counts.nbytes == size and st.n == len(values)
    for q in (50, 95, 99):
        assert st.percentile(q) == pytest.approx(np.percentile(values, q), rel=0.011)
    s = st.summary()
    assert s.max_ms == pytest.approx(values.max()) and s.mean_ms == pytest.approx(values.mean())


def test_run_summary_explains_uncertain():
    s = RunSummary(source="demo", model="m.tflite", detector="haar", frames=3, duration_s=1.0, fps=3.0,
                   dropped_frames=0, faces_seen=1, frames_with_faces=3, detection_frames=1, detections=1,
                   classifications=3, labels={"uncertain": 2, "neutral": 1}, budget_ms=66, budget_hits=3,
                   budget_misses=0, misses_by_stage={}, latency={}, events_written=0, intervals_written=0,
                   stopped_by="end", uncertain_below=0.4, uncertain_top={"angry": 2}, uncertain_mean_confidence=0.35)
    text = s.text()
    assert "uncertain (2 of 3 face-frames) is not an emotion" in text
    assert "below uncertain_below 0.40" in text and "angry 2" in text and "mean 0.35" in text
    s2 = RunSummary(**{**s.__dict__, "labels": {"neutral": 3}})
    assert "is not an emotion" not in s2.text()
