"""Interval aggregation of face events (emoedge.edge.outputs.records)."""

import pytest

from emoedge.edge.faces.tracking import UNCERTAIN, Track
from emoedge.edge.outputs.records import Aggregator


def test_aggregator_intervals():
    ag = Aggregator(["happy", "sad"], interval_s=1.0)
    t1, t2 = Track(1, (0, 0, 1, 1), 0, 0), Track(2, (0, 0, 1, 1), 0, 0)
    t1.label, t1.confidence = "happy", 0.8
    t2.label, t2.confidence = UNCERTAIN, 0.3
    assert ag.add(0, [t1, t2]) is None
    ag.budget(True)
    assert ag.add(500_000_000, [t1]) is None
    ag.budget(False)                                   # this frame went over the latency budget
    done = ag.add(1_000_000_000, [])
    ag.budget(False)                                   # counts in the next interval, the frame's own
    assert done.frames == 2 and done.faces_seen == 2 and done.face_observations == 3 and done.budget_misses == 1
    assert done.share == {"happy": pytest.approx(2 / 3), "sad": 0.0, UNCERTAIN: pytest.approx(1 / 3)}
    assert done.mean_confidence == pytest.approx((0.8 + 0.3 + 0.8) / 3)
    last = ag.flush()
    assert last.frames == 1 and last.face_observations == 0 and last.budget_misses == 1
