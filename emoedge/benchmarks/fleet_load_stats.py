"""The arithmetic of ``emoedge bench fleet --simulate``: percentiles, end-to-end lag (the store's
``received_unix_ns`` minus the device's publish time), exactly-once accounting of published against
stored intervals, and a process's CPU seconds from ``/proc/PID/stat``. Standard library only."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks (numpy's default);
    None for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is not in 0..100")
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class LagStats:
    """End-to-end lag of the intervals found both published and stored, in seconds."""
    count: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None
    mean_s: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def lag_stats(published_ns: dict[str, int], received_ns: dict[str, int]) -> LagStats:
    """Lag per interval id in both (received minus published), summarised."""
    lags = [(received_ns[i] - t) / 1e9 for i, t in published_ns.items() if i in received_ns]
    return LagStats(len(lags), percentile(lags, 50), percentile(lags, 95), percentile(lags, 99),
                    max(lags) if lags else None, sum(lags) / len(lags) if lags else None)


@dataclass(frozen=True)
class Accounting:
    """Published against stored: ``exactly_once`` when every published interval is stored once and
    nothing else is (``rows`` = ``distinct`` = ``published``, nothing missing, nothing unexpected)."""
    published: int           # distinct interval ids the devices published (broker acknowledged)
    rows: int                # rows in the store's intervals table (total)
    distinct: int            # distinct interval ids among them
    missing: int             # published, not stored
    unexpected: int          # stored, never published
    missing_examples: tuple[str, ...]

    @property
    def exactly_once(self) -> bool:
        return self.published == self.rows == self.distinct and not self.missing and not self.unexpected

    def to_dict(self) -> dict:
        return {**asdict(self), "missing_examples": list(self.missing_examples), "exactly_once": self.exactly_once}


def account(published_ids: set[str], stored_ids: list[str]) -> Accounting:
    """Exactly-once accounting from the published ids and the store's ids (one per row, repeats kept)."""
    stored = set(stored_ids)
    missing = sorted(published_ids - stored)
    return Accounting(len(published_ids), len(stored_ids), len(stored), len(missing),
                      len(stored - published_ids), tuple(missing[:10]))


def rate_per_s(count: int, first_ns: int | None, last_ns: int | None) -> float | None:
    """``count`` events between two wall clocks (ns), per second; None when the span is empty."""
    if not count or first_ns is None or last_ns is None or last_ns <= first_ns:
        return None
    return count / ((last_ns - first_ns) / 1e9)


def proc_cpu_s(pid: int, proc: Path = Path("/proc"), children: bool = False) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (``/proc/PID/stat`` utime + stime; with
    ``children`` also cutime + cstime, its exited and waited-for children's); None when the process is
    gone or there is no /proc."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()        # after "pid (comm) ": state is field 3, utime 14, stime 15
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    used = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return used / ticks


def per_interval_ms(cpu_s: float | None, intervals: int) -> float | None:
    """CPU milliseconds per interval."""
    if cpu_s is None or not intervals:
        return None
    return cpu_s * 1000.0 / intervals
