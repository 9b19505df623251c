"""The budget scheduler (emoedge.edge.runtime.scheduler): cadence, rotation and adaptation to measured times."""

import pytest

from emoedge.edge.faces.tracking import Track
from emoedge.edge.runtime.scheduler import BudgetScheduler


def _tracks(n):
    return [Track(i + 1, (10 * i, 0, 8, 8), 0, 0) for i in range(n)]


def test_scheduler_cadence_and_rotation():
    s = BudgetScheduler(budget_ms=1000, detect_every=3, max_faces=2, adapt=False)
    tracks = _tracks(5)
    detects, seen = [], []
    for f in range(9):
        plan = s.plan(f, tracks)
        detects.append(plan.detect)
        chosen = s.choose(tracks, plan.max_faces)
        for t in chosen:
            t.last_classified_frame = f
        seen.append(tuple(t.track_id for t in chosen))
        assert len(chosen) == 2
    assert detects == [True, False, False, True, False, False, True, False, False]
    assert set(seen[0] + seen[1] + seen[2]) == {1, 2, 3, 4, 5}   # every face within ceil(5/2) frames
    assert s.plan(0, []).detect                                   # nothing tracked: detect at once


def test_scheduler_adapts_scale_faces_and_cadence_from_measured_times():
    s = BudgetScheduler(budget_ms=50, detect_every=2, max_faces=8, adapt=True, min_detect_scale=0.3)
    tracks = _tracks(8)
    # first frame: nothing measured yet, full scale
    p = s.plan(0, tracks)
    assert p.detect and p.detect_scale == 1.0
    assert not s.record(p, {"capture": 2, "detect": 80, "classify": 8, "preprocess": 0}, 8)  # 1 ms per face
    assert s.stats.misses_by_stage["detect"] == 1
    p = s.plan(1, tracks)
    assert not p.detect
    p = s.plan(2, tracks)                                         # detection due: shrink it to fit
    assert p.detect and p.detect_scale < 1.0
    assert 80 * p.detect_scale ** 2 + 2 + 1 <= 50 + 1e-6
    n = p.max_faces
    assert n == 1                                                 # what is left of the budget: one face
    assert s.record(p, {"capture": 2, "detect": 80 * p.detect_scale ** 2, "classify": 1.0 * n}, n)
    assert s.stats.hits == 1
    # detection becomes very expensive: smallest scale and a stretched cadence
    for f in range(3, 30):
        p = s.plan(f, tracks)
        if p.detect:
            s.record(p, {"detect": 5000 * p.detect_scale ** 2, "classify": 8}, 8)
    assert s.detect_scale == pytest.approx(0.3) and s.detect_every > 2
    with pytest.raises(ValueError, match="positive"):
        BudgetScheduler(0)


def test_scheduler_caps_faces_to_the_remaining_budget():
    s = BudgetScheduler(budget_ms=20, detect_every=100, max_faces=10, adapt=True)
    tracks = _tracks(10)
    p = s.plan(0, tracks)
    s.record(p, {"detect": 5, "classify": 30, "capture": 1}, 10)      # 3 ms per face
    p = s.plan(1, tracks)
    assert p.max_faces == (20 - 1) // 3
