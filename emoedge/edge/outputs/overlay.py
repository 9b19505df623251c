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
from emoedge.edge.outputs.kiosk_screen import faces_from_tracks, render_kiosk_screen
from emoedge.edge.outputs.label_colors import COLORS, label_color
from emoedge.edge.outputs.sinks import Sink

if TYPE_CHECKING:
    from emoedge.edge.inference.classify import FacePrediction

__all__ = ["COLORS", "DisplaySink", "VideoSink", "draw_boxes", "draw_overlay", "draw_predictions", "screen_image"]
KIOSK_MIN_HEIGHT_PX = 720     # a kiosk screen drawn at the frame's size is drawn at least this tall


def draw_boxes(image: np.ndarray, boxes: Sequence[tuple[Sequence[float], str | None, str]], scale: float = 1.0,
               status: str = "") -> np.ndarray:
    """``(box, label, text)`` drawn on a copy of ``image`` (boxes in pixels of a plane ``scale``
    times smaller), coloured by label: the one drawing routine of the runtime and ``classify``."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for box, label, text in boxes:
        x, y, w, h = (int(round(v * scale)) for v in box)
        color = label_color(label or UNCERTAIN)
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


def screen_image(screen: str, frame, tracks, scale: float, labels: Sequence[str],
                 size_px: tuple[int, int] | None = None) -> np.ndarray:
    """What a display or a video shows of a frame: the debug overlay (at the frame's size) or the
    kiosk screen (at ``size_px``, default the frame's size made at least 720 px tall)."""
    if screen != "kiosk":
        return draw_overlay(frame.image, tracks, scale)
    if size_px is None:
        h, w = frame.image.shape[:2]
        k = max(1.0, KIOSK_MIN_HEIGHT_PX / max(1, h))
        size_px = (min(8192, max(160, round(w * k))), min(8192, max(160, round(h * k))))
    return render_kiosk_screen(frame.image, faces_from_tracks(tracks, scale, labels), size_px).image


class VideoSink(Sink):
    """Overlay frames written to a video file (the only sink that stores images; opt-in).

    The file plays at the source's own pace: it is written at ``fps`` (the source's frame rate)
    and each processed frame fills the slots up to its timestamp, so frames the pipeline skipped
    (a live camera faster than the budget, ``--realtime``) become repeats, not a sped-up video."""

    def __init__(self, path: str | Path, fps: float = 15.0, timed: bool = True, screen: str = "debug",
                 labels: Sequence[str] = ()):
        self.screen = screen          # "debug": the overlay; "kiosk": the visitor's screen (when asked for)
        self.labels = tuple(labels)
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
        img = screen_image(self.screen, frame, tracks, scale, self.labels)
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
    """A window (or a full-screen kiosk view) through OpenCV's HighGUI, showing the debug overlay or
    the kiosk screen (emoedge.edge.outputs.kiosk_screen), drawn at ``screen_size_px`` (the window is
    also sized and placed to it: a display without a window manager honours no full-screen request)
    or else at the full-screen window's own size, asked again every ``RESIZE_CHECK_FRAMES`` frames."""

    RESIZE_CHECK_FRAMES = 30

    def __init__(self, fullscreen: bool = False, title: str = "emoedge", screen: str = "debug",
                 labels: Sequence[str] = (), screen_size_px: tuple[int, int] | None = None):
        self.title = title
        self.screen = screen
        self.labels = tuple(labels)
        self.fullscreen = fullscreen
        self.screen_size_px = screen_size_px
        self._window_px: tuple[int, int] | None = None
        self._frames = 0
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
            if fullscreen:
                cv2.setWindowProperty(title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
            if screen_size_px is not None:
                cv2.resizeWindow(title, *screen_size_px)
                cv2.moveWindow(title, 0, 0)
        except cv2.error as exc:
            raise RuntimeError("this OpenCV has no window support (opencv-python-headless, or no display): "
                               "install opencv-python on the kiosk and run under a desktop session, or use "
                               "--no-display / --video-out") from exc
        self.quit = False

    def _size_px(self) -> tuple[int, int] | None:
        """The kiosk screen's size: the configured one, else a full-screen window's (when it is one)."""
        if self.screen_size_px is not None or not self.fullscreen:
            return self.screen_size_px
        if self._frames % self.RESIZE_CHECK_FRAMES == 1:
            with contextlib.suppress(cv2.error):
                _, _, w, h = cv2.getWindowImageRect(self.title)
                self._window_px = (w, h) if 640 <= w <= 8192 and 360 <= h <= 8192 else None
        return self._window_px

    def on_frame(self, frame, tracks, scale) -> None:
        self._frames += 1
        size = self._size_px() if self.screen == "kiosk" else None
        cv2.imshow(self.title, screen_image(self.screen, frame, tracks, scale, self.labels, size))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.quit = True

    def close(self) -> None:
        with contextlib.suppress(cv2.error):  # a window the user closed already
            cv2.destroyWindow(self.title)
