"""An IoU tracker that follows faces between detections, and per-face temporal smoothing
(EMA of class probabilities) with an ``uncertain`` label below a confidence threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emoedge.edge.faces.detect import Face, iou

UNCERTAIN = "uncertain"
DEFAULT_UNCERTAIN_BELOW = 0.4   # the threshold of a model whose manifest records none (chosen by hand)


@dataclass
class Track:
    """One face followed over time (mutable state owned by the tracker)."""
    track_id: int
    box: tuple[float, float, float, float]
    first_frame: int
    last_detected_frame: int
    last_classified_frame: int = -1
    misses: int = 0
    hits: int = 1
    probs: np.ndarray | None = None          # smoothed class probabilities
    label: str | None = None                 # smoothed label, or "uncertain"; None before any classification
    confidence: float = 0.0
    velocity: tuple[float, float] = (0.0, 0.0)   # px per frame, from the last two detections
    detected_box: tuple[float, float, float, float] | None = None   # the last box a detector gave
    visible: float = 1.0                     # share of the box inside the frame (1.0 when not known)

    def int_box(self) -> tuple[int, int, int, int]:
        x, y, w, h = self.box
        return int(round(x)), int(round(y)), max(1, int(round(w))), max(1, int(round(h)))


def visible_fraction(box: Sequence[float], width: int, height: int) -> float:
    """Share of the area of ``(x, y, w, h)`` that lies inside a ``width x height`` frame."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        return 0.0
    iw = max(0.0, min(x + w, width) - max(x, 0.0))
    ih = max(0.0, min(y + h, height) - max(y, 0.0))
    return iw * ih / (w * h)


def _centre_distance(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2))


def _at_edge(box: Sequence[float], width: int, height: int, px: float = 1.0) -> bool:
    """Whether a box touches the frame's border (a detector's box clipped to the frame does)."""
    x, y, w, h = box
    return x <= px or y <= px or x + w >= width - px or y + h >= height - px


class IoUTracker:
    """Greedy IoU matching of detections to tracks.

    A detection matched to a track (IoU >= ``iou_threshold``, or failing that the nearest of similar
    size within 3/4 of a face width) updates its box; unmatched detections start tracks; a track
    missed by ``max_misses`` consecutive detection rounds is dropped, at once when it touches the
    frame's border (the face has left). Between detections boxes move with the track's velocity,
    measured between its last two *detections* (never from its own extrapolated box) (``follow``).

    Given the frame size, tracks stay honest about the frame: a detection or a moved box less
    than ``min_visible`` inside the frame is not tracked (a face leaving the frame ends its
    track), so every track can be cropped and classified. Ended tracks are counted, not kept:
    memory does not grow with the length of a run.
    """

    def __init__(self, iou_threshold: float = 0.3, max_misses: int = 2, min_visible: float = 0.5):
        if not 0 < min_visible <= 1:
            raise ValueError(f"min_visible must be in (0, 1], got {min_visible}")
        self.iou_threshold = iou_threshold
        self.max_misses = max_misses
        self.min_visible = min_visible
        self.tracks: list[Track] = []
        self._next_id = 1
        self.ended = 0                     # tracks ended so far (missed, left the frame, or restarted)
        self.left_frame = 0                # of those, tracks that moved out of the frame

    def update(self, faces: Sequence[Face], frame_index: int,
               frame_size: tuple[int, int] | None = None) -> list[Track]:
        """Match this frame's detections; ``frame_size`` is ``(width, height)`` of the frame."""
        if frame_size is not None:
            faces = [f for f in faces
                     if min(f.visible, visible_fraction(f.box, *frame_size)) >= self.min_visible]
        pairs = []
        for ti, t in enumerate(self.tracks):
            for fi, f in enumerate(faces):
                v = iou(t.box, f.box)
                if v >= self.iou_threshold:
                    pairs.append((-v, ti, fi))
        used_t, used_f = set(), set()
        self._match(sorted(pairs), faces, frame_index, frame_size, used_t, used_f)
        # a second chance by centre distance, for faces that moved more than IoU can follow
        # (a low detection cadence): the nearest of similar size within 3/4 of a face width
        near = []
        for ti, t in enumerate(self.tracks):
            if ti in used_t:
                continue
            for fi, f in enumerate(faces):
                if fi in used_f or not 0.67 <= f.w / max(t.box[2], 1e-6) <= 1.5:
                    continue
                d = _centre_distance(t.box, f.box) / max(t.box[2], f.w)
                if d < 0.75:
                    near.append((d, ti, fi))
        self._match(sorted(near), faces, frame_index, frame_size, used_t, used_f)
        keep = []
        for ti, t in enumerate(self.tracks):
            if ti not in used_t:
                t.misses += 1
                if frame_size is not None and _at_edge(t.box, *frame_size):  # missed at the edge: it has left
                    self.ended += 1
                    self.left_frame += 1
                    continue
                if t.misses > self.max_misses:
                    self.ended += 1
                    continue
            keep.append(t)
        for fi, f in enumerate(faces):
            if fi not in used_f:
                box = (float(f.x), float(f.y), float(f.w), float(f.h))
                keep.append(Track(self._next_id, box, frame_index, frame_index, detected_box=box,
                                  visible=1.0 if frame_size is None else visible_fraction(box, *frame_size)))
                self._next_id += 1
        self.tracks = keep
        return self.tracks

    def _match(self, pairs, faces, frame_index, frame_size, used_t, used_f) -> None:
        for _, ti, fi in pairs:
            if ti in used_t or fi in used_f:
                continue
            used_t.add(ti)
            used_f.add(fi)
            t, f = self.tracks[ti], faces[fi]
            box = (float(f.x), float(f.y), float(f.w), float(f.h))
            last = t.detected_box if t.detected_box is not None else t.box
            dt = max(1, frame_index - t.last_detected_frame)
            # velocity of the box centre (a box clipped at the frame edge shrinks rather than moves)
            t.velocity = ((box[0] + box[2] / 2 - last[0] - last[2] / 2) / dt,
                          (box[1] + box[3] / 2 - last[1] - last[3] / 2) / dt)
            t.box = t.detected_box = box
            t.visible = 1.0 if frame_size is None else visible_fraction(box, *frame_size)
            t.last_detected_frame = frame_index
            t.misses = 0
            t.hits += 1

    def restart(self) -> None:
        """End every track (the next frame is unrelated to this one); ids keep counting up."""
        self.ended += len(self.tracks)
        self.tracks = []

    def follow(self, frame_index: int, frame_size: tuple[int, int] | None = None) -> list[Track]:
        """Frames without detection: move boxes by their velocity (one frame's worth). With
        ``frame_size`` a track whose box is now less than ``min_visible`` inside the frame ends."""
        keep = []
        for t in self.tracks:
            vx, vy = t.velocity
            x, y, w, h = t.box
            t.box = (x + vx, y + vy, w, h)
            if frame_size is not None:
                t.visible = visible_fraction(t.box, *frame_size)
                if t.visible < self.min_visible:
                    self.ended += 1
                    self.left_frame += 1
                    continue
            keep.append(t)
        self.tracks = keep
        return self.tracks

    @property
    def total_tracks(self) -> int:
        return self._next_id - 1


class EmaSmoother:
    """``probs <- alpha * new + (1 - alpha) * probs`` per track; the label is the top class when
    its smoothed probability reaches ``threshold``, else ``uncertain``.

    With ``hysteresis`` h, a label, once given, holds while its class stays on top and above
    ``threshold - h``, and an ``uncertain`` face needs ``threshold + h`` to get a label: a face whose
    confidence hovers at the threshold (a still photo under a detector whose box moves by a few
    pixels) does not flicker between a class and ``uncertain``.
    """

    def __init__(self, class_names: Sequence[str], alpha: float = 0.5, threshold: float = 0.4,
                 hysteresis: float = 0.05):
        if not 0 < alpha <= 1:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
        if not 0 <= hysteresis < 0.5:
            raise ValueError(f"hysteresis must be in [0, 0.5), got {hysteresis}")
        self.class_names = tuple(class_names)
        self.alpha = alpha
        self.threshold = threshold
        self.hysteresis = hysteresis if threshold > 0 else 0.0

    def observe(self, track: Track, probs: np.ndarray, frame_index: int) -> None:
        p = np.asarray(probs, dtype=np.float32)
        track.probs = p.copy() if track.probs is None else self.alpha * p + (1 - self.alpha) * track.probs
        i = int(np.argmax(track.probs))
        track.confidence = float(track.probs[i])
        top = self.class_names[i]
        if track.label == top:
            need = self.threshold - self.hysteresis       # holding a label
        elif track.label == UNCERTAIN:
            need = self.threshold + self.hysteresis       # leaving uncertain
        else:
            need = self.threshold                         # a first label, or another class on top
        track.label = top if track.confidence >= need else UNCERTAIN
        track.last_classified_frame = frame_index
