"""The timing helpers (emoedge.benchmarks.timing)."""

import pytest

from emoedge.benchmarks.timing import percentiles, summary, time_call, time_calls


def test_time_calls_warms_up_then_times_each_call():
    calls = []
    ms = time_calls(lambda: calls.append(1), runs=5, warmup=3)
    assert len(calls) == 8 and len(ms) == 5 and all(m >= 0 for m in ms)
    out, t = time_call(lambda a, b=0: a + b, 2, b=3)
    assert out == 5 and t >= 0
    assert percentiles([1, 2, 3, 4, 5], [0, 50, 100]) == [1.0, 3.0, 5.0]
    assert summary([2.0, 4.0]) == {"p50_ms": 3.0, "p95_ms": pytest.approx(3.9), "p99_ms": pytest.approx(3.98),
                                   "mean_ms": 3.0}
    assert summary([]) == {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0}
