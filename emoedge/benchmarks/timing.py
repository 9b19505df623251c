"""Timing: wall time of calls in milliseconds (``time.perf_counter_ns``) and their percentiles, the
one place the benchmarks measure time per call."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def time_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """Call ``fn`` once: (its result, wall time in ms)."""
    t = time.perf_counter_ns()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter_ns() - t) / 1e6


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 0) -> list[float]:
    """Call ``fn()`` ``warmup`` times untimed, then ``runs`` times: the wall time of each, in ms."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / 1e6)
    return out


def percentiles(samples_ms: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> list[float]:
    """The ``qs`` percentiles of ``samples_ms`` (linear interpolation, as numpy); NaNs for no samples."""
    if len(samples_ms) == 0:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(np.asarray(samples_ms, dtype=float), list(qs))]


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """``{"p50_ms", "p95_ms", "p99_ms", "mean_ms"}`` of ``samples_ms`` (all 0.0 for no samples)."""
    if len(samples_ms) == 0:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0}
    p50, p95, p99 = percentiles(samples_ms)
    return {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "mean_ms": float(np.mean(samples_ms))}
