"""What a run counts, frame by frame, for its summary: frames, detections, classifications,
records written, the smoothed labels (and what lay behind ``uncertain``), and each stage's latency."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from emoedge.edge.faces.tracking import UNCERTAIN
from emoedge.edge.runtime.scheduler import STAGES
from emoedge.edge.runtime.stats import LatencyStats


def _latency_per_stage() -> dict[str, LatencyStats]:
    return {s: LatencyStats() for s in STAGES + ("frame",)}


@dataclass
class RunCounters:
    frames: int = 0
    frames_with_faces: int = 0
    detection_frames: int = 0             # frames on which the detector ran
    detections: int = 0                   # faces it returned, summed over those frames
    classifications: int = 0
    events: int = 0                       # events written (see Pipeline._deliver)
    intervals: int = 0                    # intervals stored
    labels: Counter = field(default_factory=Counter)         # smoothed label -> face-frames
    uncertain_top: Counter = field(default_factory=Counter)  # the most likely class of the uncertain face-frames
    uncertain_conf: float = 0.0           # their summed confidence
    latency: dict[str, LatencyStats] = field(default_factory=_latency_per_stage)   # per stage and "frame"

    def count_faces(self, tracks: Sequence, class_names: Sequence[str]) -> None:
        """One frame's tracks: the frame had faces, and each labelled face-frame by its label."""
        if tracks:
            self.frames_with_faces += 1
        for t in tracks:
            if t.label is not None:
                self.labels[t.label] += 1
                if t.label == UNCERTAIN:
                    self.uncertain_top[class_names[int(np.argmax(t.probs))]] += 1
                    self.uncertain_conf += t.confidence

    def time_frame(self, stage_ms: dict[str, float], frame_ms: float) -> None:
        for k, v in stage_ms.items():
            self.latency[k].add(v)
        self.latency["frame"].add(frame_ms)

    @property
    def uncertain_mean_confidence(self) -> float:
        return self.uncertain_conf / max(1, self.labels.get(UNCERTAIN, 0))
