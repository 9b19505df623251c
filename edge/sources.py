"""Frame sources behind one interface: Picamera2, an OpenCV camera (index, V4L2 path or
GStreamer pipeline), a video file, an image file or folder, and ``demo`` (a real photo that
ships with matplotlib), so the main job runs on a machine without a camera.

``read()`` returns the newest frame to work on, or ``None`` at the end. Live sources grab in a
background thread that keeps only the latest frame: stale frames are dropped (and counted),
never queued. A camera that stops delivering is reopened with backoff before the source gives up.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from emoedge.data.datasets import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".h264")


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message names it."""


@dataclass(frozen=True, eq=False)
class Frame:
    image: np.ndarray              # BGR (H, W, 3) for display and colour detectors
    gray: np.ndarray | None        # a ready grayscale plane (Picamera2 lores Y, maybe smaller), if any
    index: int                     # frame number at the source (gaps = dropped frames)
    timestamp_ns: int              # capture time on the pipeline's clock


class FrameSource:
    name = "source"
    live = False
    independent_frames = False   # frames unrelated to each other (a folder of photos): no tracking across them

    def read(self) -> Frame | None:
        raise NotImplementedError

    def interrupt(self) -> None:
        """Make a blocked ``read()`` return ``None`` soon (the pipeline is stopping)."""

    @property
    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ImageSource(FrameSource):
    """One image file, or every image of a folder (sorted), each once (or ``repeat`` times)."""

    independent_frames = True

    def __init__(self, path: str | Path, repeat: int = 1, clock: Callable[[], int] = time.monotonic_ns):
        self.path = Path(path)
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise SourceError(f"{self.path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise SourceError(f"{self.path}: image file or folder not found")
        self.name = f"images:{self.path}"
        self.repeat = repeat
        self.clock = clock
        self._i = 0
        self._cache: dict[Path, np.ndarray] = {}

    def read(self) -> Frame | None:
        if self._i >= len(self.files) * self.repeat:
            return None
        p = self.files[self._i % len(self.files)]
        img = self._cache.get(p)
        if img is None:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise SourceError(f"{p}: not a readable image")
            if self.repeat > 1:
                self._cache[p] = img
        self._i += 1
        return Frame(img, None, self._i - 1, self.clock())


class DemoSource(ImageSource):
    """matplotlib's ``grace_hopper.jpg`` (a real face), ``repeat`` times, like a still camera."""

    independent_frames = False

    def __init__(self, repeat: int = 30, clock: Callable[[], int] = time.monotonic_ns):
        from emoedge.edge.classify import demo_image

        self.files = [Path("grace_hopper.jpg")]
        self._cache = {self.files[0]: demo_image()}
        self.path = self.files[0]
        self.name = "demo:grace_hopper.jpg"
        self.repeat = repeat
        self.clock = clock
        self._i = 0


class VideoFileSource(FrameSource):
    """A video file, frame by frame. Offline (default) every frame is processed and stamped with
    its media time. With ``realtime`` the file plays at its own frame rate on the pipeline's clock
    and frames the pipeline is too slow for are skipped (counted as dropped)."""

    def __init__(self, path: str | Path, realtime: bool = False, clock: Callable[[], int] = time.monotonic_ns):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: video file not found")
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise SourceError(f"{self.path}: not a readable video (OpenCV could not open it)")
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        self.name = f"video:{self.path}"
        self.realtime = realtime
        self.clock = clock
        self._next = 0
        self._dropped = 0
        self._t0: int | None = None

    @property
    def dropped(self) -> int:
        return self._dropped

    def read(self) -> Frame | None:
        now = self.clock()
        if self.realtime:
            if self._t0 is None:
                self._t0 = now
            due = int((now - self._t0) * self.fps / 1e9)  # the frame the clock says is current
            while self._next < due:
                if not self.cap.grab():
                    return None
                self._next += 1
                self._dropped += 1
        ok, img = self.cap.read()
        if not ok or img is None:
            return None
        self._next += 1
        if not self.realtime:  # offline: the video's own timeline, so intervals are in media time
            if self._t0 is None:
                self._t0 = now
            now = self._t0 + int((self._next - 1) * 1e9 / self.fps)
        return Frame(img, None, self._next - 1, now)

    def close(self) -> None:
        self.cap.release()


class _LatestGrabber:
    """Runs ``grab()`` in a thread and keeps only the newest frame."""

    def __init__(self, grab: Callable[[], tuple[np.ndarray, np.ndarray | None] | None],
                 reopen: Callable[[], None], name: str, clock: Callable[[], int],
                 max_retries: int = 5, backoff_s: float = 0.5):
        self._grab, self._reopen, self.name, self.clock = grab, reopen, name, clock
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._count = 0
        self._taken = -1
        self._dropped = 0
        self._failed: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"grab-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                got = self._grab()
            except Exception as exc:  # a driver error is a failure like an empty read
                log.warning("%s: read failed: %s", self.name, exc)
                got = None
            if got is None:
                failures += 1
                if failures > self.max_retries:
                    with self._cond:
                        self._failed = f"{self.name}: no frames after {self.max_retries} reconnect attempts"
                        self._cond.notify_all()
                    return
                delay = self.backoff_s * 2 ** (failures - 1)
                log.warning("%s: no frame; reconnecting in %.1f s (attempt %d/%d)", self.name, delay, failures,
                            self.max_retries)
                if self._stop.wait(delay):
                    return
                try:
                    self._reopen()
                except Exception as exc:
                    log.warning("%s: reopen failed: %s", self.name, exc)
                continue
            failures = 0
            img, gray = got
            with self._cond:
                if self._latest is not None and self._latest.index > self._taken:
                    self._dropped += 1  # replaced before anyone took it
                self._latest = Frame(img, gray, self._count, self.clock())
                self._count += 1
                self._cond.notify_all()

    def read(self, timeout_s: float = 5.0) -> Frame | None:
        with self._cond:
            deadline = time.monotonic() + timeout_s
            while (self._latest is None or self._latest.index <= self._taken) and self._failed is None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    break
                self._cond.wait(left)
            if self._latest is not None and self._latest.index > self._taken:
                self._taken = self._latest.index
                return self._latest
            if self._failed:
                raise SourceError(self._failed)
            return None

    @property
    def dropped(self) -> int:
        return self._dropped

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


class _LiveSource(FrameSource):
    """A source read by a :class:`_LatestGrabber` thread; subclasses open, grab and release."""

    live = True
    _grabber: _LatestGrabber
    _interrupted: threading.Event | None = None

    def read(self) -> Frame | None:
        """The newest frame; waits through reconnects; ``None`` once interrupted; SourceError
        when the camera is gone for good."""
        if self._interrupted is None:
            self._interrupted = threading.Event()
        while not self._interrupted.is_set():
            frame = self._grabber.read(timeout_s=0.5)
            if frame is not None:
                return frame
            if not self._grabber._thread.is_alive() and self._grabber._failed is None:
                return None
        return None

    def interrupt(self) -> None:
        if self._interrupted is None:
            self._interrupted = threading.Event()
        self._interrupted.set()

    @property
    def dropped(self) -> int:
        return self._grabber.dropped

    def close(self) -> None:
        self._grabber.close()
        self._release()

    def _release(self) -> None:
        raise NotImplementedError


class OpenCVCameraSource(_LiveSource):
    """A camera through OpenCV: an index (``0``), a V4L2 device (``/dev/video0``) or a GStreamer
    pipeline string (ending in ``appsink``), as on Coral boards."""

    def __init__(self, spec: str | int, width: int | None = None, height: int | None = None,
                 fps: float | None = None, clock: Callable[[], int] = time.monotonic_ns, max_retries: int = 5,
                 backoff_s: float = 0.5):
        self.spec = spec
        self.name = f"camera:{spec}"
        self.width, self.height, self.fps = width, height, fps
        self.cap = None
        self._open()
        self._grabber = _LatestGrabber(self._grab, self._open, self.name, clock, max_retries, backoff_s)

    def _open(self) -> None:
        if self.cap is not None:
            self.cap.release()
        spec = self.spec
        if isinstance(spec, str) and spec.isdigit():
            spec = int(spec)
        if isinstance(spec, str) and ("!" in spec or spec.strip().endswith("appsink")):
            cap = cv2.VideoCapture(spec, cv2.CAP_GSTREAMER)
        else:
            cap = cv2.VideoCapture(spec)
        if not cap.isOpened():
            raise SourceError(f"{self.name}: cannot open the camera (is it connected, and is the index/device/"
                              f"pipeline right? GStreamer strings need an OpenCV built with GStreamer)")
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        self.cap = cap

    def _grab(self):
        ok, img = self.cap.read()
        return (img, None) if ok and img is not None else None

    def _release(self) -> None:
        if self.cap is not None:
            self.cap.release()


class Picamera2Source(_LiveSource):
    """The Raspberry Pi camera through Picamera2: a ``main`` RGB stream for display and a
    ``lores`` YUV420 stream whose Y plane is the grayscale image for detection and classification.
    Picamera2 is imported here, when the source is made (it exists only on Raspberry Pi OS)."""

    def __init__(self, size=(1280, 720), lores=(640, 360), fps: float | None = 30.0,
                 clock: Callable[[], int] = time.monotonic_ns, max_retries: int = 5, backoff_s: float = 0.5):
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError("picamera: the Picamera2 library is not available. It comes with Raspberry Pi OS "
                              "(sudo apt install python3-picamera2) and is seen from a venv made with "
                              "--system-site-packages; off a Pi use --source 0, a video file or demo") from exc
        self.name = "picamera2"
        self._Picamera2 = Picamera2
        self.size, self.lores, self.fps = tuple(size), tuple(lores), fps
        self.cam = None
        self._open()
        self._grabber = _LatestGrabber(self._grab, self._open, self.name, clock, max_retries, backoff_s)

    def _open(self) -> None:
        self._release()
        cam = self._Picamera2()
        controls = {"FrameRate": self.fps} if self.fps else {}
        config = cam.create_video_configuration(main={"size": self.size, "format": "RGB888"},
                                                lores={"size": self.lores, "format": "YUV420"}, controls=controls)
        cam.configure(config)
        cam.start()
        self.cam = cam

    def _grab(self):
        req = self.cam.capture_request()
        try:
            main = req.make_array("main")
            yuv = req.make_array("lores")
        finally:
            req.release()
        h = self.lores[1]
        gray = yuv[:h, : self.lores[0]]  # the Y plane of YUV420 is already grayscale
        # Picamera2's RGB888 is B,G,R in memory, as OpenCV expects. Detection and classification
        # work on the lores Y plane; the main stream is only for display.
        return main, np.ascontiguousarray(gray)

    def _release(self) -> None:
        if self.cam is not None:
            try:
                self.cam.stop()
                self.cam.close()
            except Exception:  # closing a dead camera may fail; it is being replaced or closed anyway
                log.debug("closing Picamera2 failed", exc_info=True)
            self.cam = None


def open_source(spec: str, clock: Callable[[], int] = time.monotonic_ns, realtime: bool = False,
                width: int | None = None, height: int | None = None, fps: float | None = None,
                lores: tuple[int, int] = (640, 360), repeat: int = 1) -> FrameSource:
    """``demo``, ``picamera``, a camera index/device/GStreamer pipeline, a video, an image or a folder."""
    s = str(spec)
    if s == "demo":
        return DemoSource(repeat=max(repeat, 1) if repeat > 1 else 30, clock=clock)
    if s in ("picamera", "picamera2"):
        size = (width or 1280, height or 720)
        return Picamera2Source(size=size, lores=lores, fps=fps, clock=clock)
    if s.isdigit() or s.startswith("/dev/video") or "!" in s:
        return OpenCVCameraSource(s, width, height, fps, clock=clock)
    p = Path(s)
    if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(p, repeat=repeat, clock=clock)
    if p.suffix.lower() in VIDEO_SUFFIXES or p.is_file():
        return VideoFileSource(p, realtime=realtime, clock=clock)
    raise SourceError(f"{s}: not a source: expected demo, picamera, a camera index, /dev/videoN, a GStreamer "
                      f"pipeline, a video file, an image file or a folder of images")
