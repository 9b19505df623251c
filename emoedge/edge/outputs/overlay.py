"""The overlay: boxes, labels and confidence drawn on frames, shown in a window (or a full-screen
kiosk) or written to a video file. The video sink is the only one that stores images, and only
when asked for (the privacy rule of the configuration decides whether it may)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from emoedge.core.errors import WriteError
from emoedge.edge.faces.tracking import UNCERTAIN, Track
from emoedge.edge.outputs.sinks import Sink

if TYPE_CHECKING:
    from emoedge.edge.inference.classify import FacePrediction

COLORS = {"happy": (0, 200, 0), "surprise": (0, 200, 255), "neutral": (200, 200, 200), "sad": (255, 120, 0),
          "angry": (0, 0, 255), "fear": (180, 0, 180), "disgust": (0, 120, 120), "contempt": (120, 120, 0),
          UNCERTAIN: (128, 128, 128)}


def draw_boxes(image: np.ndarray, boxes: Sequence[tuple[Sequence[float], str | None, str]], scale: float = 1.0,
               status: str = "") -> np.ndarray:
    """``(box, label, text)`` drawn on a copy of ``image`` (boxes in pixels of a plane ``scale``
    times smaller), coloured by label: the one drawing routine of the runtime and ``classify``."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for box, label, text in boxes:
        x, y, w, h = (int(round(v * scale)) for v in box)
        color = COLORS.get(label or UNCERTAIN, (0, 200, 255))
        cv2.rectangle(out, (x, y), (x + w, y + h), color, 2)
        cv2.putText(out, text, (x, max(14, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.55, color, 2)
    if status:
        cv2.putText(out, status, (8, out.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return out


def draw_predictions(image: np.ndarray, preds: Sequence[FacePrediction]) -> np.ndarray:
    """``emoedge classify``'s faces: label and confidence of each prediction."""
    return draw_boxes(image, [(p.face.box, p.label, f"{p.label} {p.confidence:.0%}") for p in preds])


def draw_overlay(image: np.ndarray, tracks: Sequence[Track], scale: float = 1.0, status: str = "") -> np.ndarray:
    """The runtime's tracks: id, smoothed label and confidence."""
    return draw_boxes(image, [(t.box, t.label, f"#{t.track_id} {t.label or '...'}"
                               + (f" {t.confidence:.0%}" if t.label else "")) for t in tracks], scale, status)


class VideoSink(Sink):
    """Overlay frames written to a video file (the only sink that stores images; opt-in).

    The file plays at the source's own pace: it is written at ``fps`` (the source's frame rate)
    and each processed frame fills the slots up to its timestamp, so frames the pipeline skipped
    (a live camera faster than the budget, ``--realtime``) become repeats, not a sped-up video."""

    def __init__(self, path: str | Path, fps: float = 15.0, timed: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = float(fps)
        self.timed = timed            # False: one slot per frame (unrelated photos)
        self.writer = None
        self.written = 0
        self._t0: int | None = None

    def on_frame(self, frame, tracks, scale) -> None:
        if self.timed:
            if self._t0 is None:
                self._t0 = frame.timestamp_ns
            due = int(round((frame.timestamp_ns - self._t0) * self.fps / 1e9)) + 1 - self.written
            if due <= 0:
                return  # frames faster than the file's rate: this slot is written already
            due = min(due, int(self.fps * 10) + 1)  # a stall (camera reconnect) fills at most 10 s
        else:
            due = 1
        img = draw_overlay(frame.image, tracks, scale)
        if self.writer is not None and (img.shape[1], img.shape[0]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)  # a video has one frame size
        if self.writer is None:
            self.size = (img.shape[1], img.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() in (".mp4", ".m4v") else "MJPG"))
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (img.shape[1], img.shape[0]))
            if not self.writer.isOpened():
                raise WriteError(f"{self.path}: OpenCV cannot write this video file")
        for _ in range(due):
            self.writer.write(img)
        self.written += due

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


class DisplaySink(Sink):
    """A window (or a full-screen kiosk view) through OpenCV's HighGUI."""

    def __init__(self, fullscreen: bool = False, title: str = "emoedge"):
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
            if fullscreen:
                cv2.setWindowProperty(title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        except cv2.error as exc:
            raise RuntimeError("this OpenCV has no window support (opencv-python-headless, or no display): "
                               "install opencv-python on the kiosk and run under a desktop session, or use "
                               "--no-display / --video-out") from exc
        self.quit = False

    def on_frame(self, frame, tracks, scale) -> None:
        cv2.imshow(self.title, draw_overlay(frame.image, tracks, scale))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.quit = True

    def close(self) -> None:
        with contextlib.suppress(cv2.error):  # a window the user closed already
            cv2.destroyWindow(self.title)
