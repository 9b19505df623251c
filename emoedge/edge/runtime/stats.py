"""A run's numbers: streaming per-stage latency statistics in constant memory, and the typed
summary a run returns (with its exit code)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emoedge.core.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_SOURCE, EXIT_WRITE


@dataclass(frozen=True)
class StageLatency:
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


class LatencyStats:
    """Streaming latency statistics in constant memory: exact count, mean and max, percentiles
    from a log-spaced histogram (bins 1% wide from 1 us to 100 s, so a percentile is within 1%).
    Written by hand to keep the device install small (no extra package for ~30 lines)."""

    LO_MS, HI_MS, RATIO = 1e-3, 1e5, 1.01

    def __init__(self):
        self._log_r = math.log(self.RATIO)
        self.nbins = int(math.ceil(math.log(self.HI_MS / self.LO_MS) / self._log_r)) + 2
        self.counts = np.zeros(self.nbins, dtype=np.int64)
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, ms: float) -> None:
        self.n += 1
        self.total += ms
        if ms > self.max:
            self.max = ms
        if ms <= self.LO_MS:
            i = 0
        else:
            i = min(self.nbins - 1, int(math.log(ms / self.LO_MS) / self._log_r) + 1)
        self.counts[i] += 1

    def percentile(self, q: float) -> float:
        if self.n == 0:
            return 0.0
        rank = q / 100.0 * self.n
        i = int(np.searchsorted(np.cumsum(self.counts), max(rank, 1), side="left"))
        if i == 0:
            return min(self.LO_MS, self.max)
        return min(self.LO_MS * self.RATIO ** (i - 0.5), self.max)   # the bin's geometric middle

    def summary(self) -> StageLatency:
        if self.n == 0:
            return StageLatency(0.0, 0.0, 0.0, 0.0, 0.0)
        return StageLatency(self.total / self.n, self.percentile(50), self.percentile(95), self.percentile(99),
                            self.max)


@dataclass(frozen=True)
class RunSummary:
    source: str
    model: str
    detector: str
    frames: int
    duration_s: float
    fps: float
    dropped_frames: int
    faces_seen: int                       # distinct tracks
    frames_with_faces: int
    detection_frames: int                 # frames on which the detector ran
    detections: int                       # faces the detector returned, summed over those frames
    classifications: int
    labels: dict[str, int]                # label -> face-frames with that smoothed label
    budget_ms: float
    budget_hits: int
    budget_misses: int
    misses_by_stage: dict[str, int]
    latency: dict[str, StageLatency]      # per stage and "frame"
    events_written: int                   # events a sink wrote (all made, without an events sink)
    intervals_written: int                # intervals the summaries database stored (else any sink; no sink: made)
    stopped_by: str                       # end | max_frames | signal | display | source_failed | error
    run_id: str = ""
    started_utc: str = ""
    tracks_left_frame: int = 0            # tracks ended because the face moved out of the frame
    records_lost: int = 0                 # records (events, intervals, video frames) not written
    write_errors: tuple[str, ...] = ()    # what went wrong writing them, per file
    unreadable_inputs: int = 0            # input files skipped as unreadable
    error: str | None = None
    uncertain_below: float = 0.0          # the threshold that made a face-frame "uncertain"
    uncertain_top: dict[str, int] = field(default_factory=dict)  # the most likely class of those face-frames
    uncertain_mean_confidence: float = 0.0  # their mean top-class (smoothed) probability

    @property
    def exit_code(self) -> int:
        """0 done; 3 the source was lost; 4 records were lost; 2 input files were unreadable."""
        if self.stopped_by == "source_failed":
            return EXIT_SOURCE
        if self.records_lost or self.write_errors:
            return EXIT_WRITE
        if self.unreadable_inputs:
            return EXIT_BAD_INPUT
        return EXIT_OK

    def to_dict(self) -> dict:
        return {**asdict(self), "exit_code": self.exit_code}

    def text(self) -> str:
        lines = [f"{self.frames} frames in {self.duration_s:.1f} s = {self.fps:.1f} FPS from {self.source} "
                 f"({self.dropped_frames} dropped); detector {self.detector}, model {Path(self.model).name}",
                 f"faces: {self.faces_seen} tracked, on {self.frames_with_faces} frames; "
                 f"{self.classifications} classifications; labels {dict(self.labels)}",
                 f"budget {self.budget_ms:.0f} ms: {self.budget_hits} hits, {self.budget_misses} misses "
                 f"(by stage: {', '.join(f'{k} {v}' for k, v in self.misses_by_stage.items() if v) or 'none'})",
                 "latency ms (p50 / p95 / p99): " + "; ".join(
                     f"{k} {v.p50_ms:.2f}/{v.p95_ms:.2f}/{v.p99_ms:.2f}" for k, v in self.latency.items()),
                 f"events {self.events_written}, intervals {self.intervals_written}; stopped by {self.stopped_by}"
                 f"; run {self.run_id} started {self.started_utc}"]
        n_unc = self.labels.get("uncertain", 0)
        if n_unc:
            top = sorted(self.uncertain_top.items(), key=lambda kv: -kv[1])
            lines.append(
                f"uncertain ({n_unc} of {sum(self.labels.values())} face-frames) is not an emotion: the model's most "
                f"likely class had a smoothed probability below uncertain_below {self.uncertain_below:.2f} (+-0.05 "
                f"hysteresis against flicker; mean "
                f"{self.uncertain_mean_confidence:.2f}; most likely there: "
                f"{', '.join(f'{k} {v}' for k, v in top[:3])}), so no label was claimed. Faces the model was not "
                "trained on (pose, light, a calm face between classes) do this; --uncertain-below 0 shows its best "
                "guess, `emoedge classify --image FILE` every class's probability")
        if self.unreadable_inputs:
            lines.append(f"unreadable input files skipped: {self.unreadable_inputs} (named in the log above)")
        if self.records_lost or self.write_errors:
            lines.append(f"RECORDS LOST: {self.records_lost}; " + "; ".join(self.write_errors))
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)
