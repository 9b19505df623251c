"""One frame's timing: the pipeline's clock read at each stage boundary, and the per-stage
breakdown (``STAGES``, in ms) the budget scheduler, the run's latency statistics and the
Prometheus metrics take. The readings are made by the pipeline, in order; a stage that did not
run this frame (no detection, no face to classify) takes no time."""

from __future__ import annotations

from dataclasses import dataclass

MS_PER_NS = 1e-6


@dataclass
class FrameTimes:
    """Clock readings (ns) of one frame, in the order they are taken."""

    start: int                # before the source is read
    captured: int = 0         # the frame is in hand
    detected: int = 0         # the detector is done (= captured on a frame without detection)
    tracked: int = 0          # tracks are updated or followed
    preprocessed: int = 0     # face crops are ready (= tracked when no face is classified)
    classified: int = 0       # the classifier is done (= tracked when no face is classified)
    faces_done: int = 0       # smoothing, drift and events are done; counting and sinks follow
    end: int = 0              # every sink has the frame

    def no_detection(self) -> None:
        self.detected = self.captured

    def no_classification(self) -> None:
        self.preprocessed = self.classified = self.tracked

    def stage_ms(self) -> dict[str, float]:
        """The frame's stages (``scheduler.STAGES``), ms; "sinks" counts everything after the faces."""
        ms = MS_PER_NS
        return {"capture": (self.captured - self.start) * ms, "detect": (self.detected - self.captured) * ms,
                "track": (self.tracked - self.detected) * ms, "preprocess": (self.preprocessed - self.tracked) * ms,
                "classify": (self.classified - self.preprocessed) * ms, "sinks": (self.end - self.faces_done) * ms}

    @property
    def frame_ms(self) -> float:
        return (self.end - self.start) * MS_PER_NS

    @property
    def frame_s(self) -> float:
        return (self.end - self.start) * 1e-9
