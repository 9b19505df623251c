"""The fixed latency budget: decide, per frame, whether to detect (and at what scale) and which
faces to classify, from measured stage times; count budget hits and misses.

Policy, for a per-frame budget B:

* detection runs every ``detect_every`` frames (or at once when no face is tracked); in between
  the tracker follows faces;
* the faces classified per frame are capped (``max_faces``) and chosen by rotation: the track
  classified longest ago (or never) first, so every face stays fresh;
* with ``adapt`` on, measured stage times (EMA) predict the frame's cost: the detection input is
  shrunk (down to ``min_detect_scale``) when detection would not fit, the number of faces is cut
  to what the remaining budget allows (at least one), and when detection alone cannot fit even
  at the smallest scale the detection cadence is stretched (up to ``max_detect_every``).

The scheduler never reads a clock: the pipeline measures and reports, so tests drive it with a
fake clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

STAGES = ("capture", "detect", "track", "preprocess", "classify", "sinks")


@dataclass(frozen=True)
class FramePlan:
    detect: bool
    detect_scale: float
    max_faces: int              # faces to classify this frame (after detection/tracking)
    detect_every: int


@dataclass
class BudgetStats:
    frames: int = 0
    hits: int = 0
    misses: int = 0
    misses_by_stage: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STAGES})

    @property
    def hit_rate(self) -> float:
        return self.hits / self.frames if self.frames else 0.0


class _Ema:
    def __init__(self, alpha: float = 0.2):
        self.alpha = alpha
        self.value: float | None = None

    def add(self, x: float) -> None:
        self.value = x if self.value is None else self.alpha * x + (1 - self.alpha) * self.value

    def get(self, default: float = 0.0) -> float:
        return default if self.value is None else self.value


class BudgetScheduler:
    def __init__(self, budget_ms: float, detect_every: int = 5, max_faces: int = 4, adapt: bool = True,
                 min_detect_scale: float = 0.35, max_detect_scale: float = 1.0, max_detect_every: int = 30):
        if budget_ms <= 0:
            raise ValueError(f"the latency budget must be positive, got {budget_ms} ms")
        if detect_every < 1 or max_faces < 1:
            raise ValueError("detect_every and max_faces must be at least 1")
        self.budget_ms = budget_ms
        self.base_detect_every = detect_every
        self.detect_every = detect_every
        self.max_faces = max_faces
        self.adapt = adapt
        self.min_detect_scale = min_detect_scale
        self.max_detect_scale = max_detect_scale
        self.max_detect_every = max_detect_every
        self.detect_scale = max_detect_scale
        self._last_detect_frame: int | None = None
        self._detect_full_ms = _Ema()      # detection time divided by scale^2 (cost ~ pixels)
        self._per_face_ms = _Ema()          # preprocess + classify, per face
        self._fixed_ms = _Ema()             # capture + track + sinks
        self.stats = BudgetStats()

    # -- planning ---------------------------------------------------------------------------
    def plan(self, frame_index: int, tracks: Sequence) -> FramePlan:
        due = (self._last_detect_frame is None or not tracks
               or frame_index - self._last_detect_frame >= self.detect_every)
        scale = self.detect_scale
        n_faces = self.max_faces
        if self.adapt and self._detect_full_ms.value is not None:
            free = self.budget_ms - self._fixed_ms.get()
            full = self._detect_full_ms.get()
            if due:
                # shrink detection to leave room for at least one face
                room = free - self._per_face_ms.get()
                want = math.sqrt(max(room, 0.0) / full) if full > 0 else self.max_detect_scale
                scale = min(self.max_detect_scale, max(self.min_detect_scale, want))
                self.detect_scale = scale
                fits = full * scale * scale <= room
                if not fits and self.detect_every < self.max_detect_every:
                    self.detect_every += 1          # detection cannot fit: run it less often
                elif fits and self.detect_every > self.base_detect_every and want > self.min_detect_scale * 1.2:
                    self.detect_every -= 1          # room again: back toward the configured cadence
                free -= full * scale * scale
            per_face = self._per_face_ms.get()
            if per_face > 0:
                n_faces = max(1, min(self.max_faces, int(free // per_face)))
        if due:
            self._last_detect_frame = frame_index
        return FramePlan(due, scale, n_faces, self.detect_every)

    @staticmethod
    def choose(tracks: Sequence, n: int) -> list:
        """Rotation: the ``n`` tracks classified longest ago (never-classified first)."""
        return sorted(tracks, key=lambda t: (t.last_classified_frame, t.track_id))[:n]

    # -- measuring --------------------------------------------------------------------------
    def record(self, plan: FramePlan, stage_ms: dict[str, float], n_classified: int) -> bool:
        """Report a finished frame's stage times; returns whether it was within budget."""
        if plan.detect and "detect" in stage_ms:
            self._detect_full_ms.add(stage_ms["detect"] / max(plan.detect_scale, 1e-3) ** 2)
        if n_classified:
            self._per_face_ms.add((stage_ms.get("preprocess", 0.0) + stage_ms.get("classify", 0.0)) / n_classified)
        self._fixed_ms.add(stage_ms.get("capture", 0.0) + stage_ms.get("track", 0.0) + stage_ms.get("sinks", 0.0))
        total = 0.0
        over_in = None
        for s in STAGES:
            total += stage_ms.get(s, 0.0)
            if over_in is None and total > self.budget_ms:
                over_in = s
        self.stats.frames += 1
        if over_in is None:
            self.stats.hits += 1
            return True
        self.stats.misses += 1
        self.stats.misses_by_stage[over_in] += 1
        return False
