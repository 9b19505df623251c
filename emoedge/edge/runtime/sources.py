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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emoedge.core.errors import EXIT_BAD_INPUT, EXIT_SOURCE, EmoedgeError

log = logging.getLogger(__name__)

# the image files every folder reader of the project takes (the data package reads it from here)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".pgm", ".tif", ".tiff")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".h264")


class SourceError(EmoedgeError, RuntimeError):
    """A source that cannot be opened or read; the message names it. ``exit_code`` is 3 (the
    source is lost or unavailable) or 2 (a file that is not there or not readable: bad input)."""

    def __init__(self, message: str, exit_code: int = EXIT_SOURCE):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, eq=False)
class Frame:
    image: np.ndarray              # BGR (H, W, 3) for display and colour detectors
    gray: np.ndarray | None        # a ready grayscale plane (Picamera2 lores Y, maybe smaller), if any
    index: int                     # frame number at the source (gaps = dropped frames)
    timestamp_ns: int              # capture time on the pipeline's (monotonic) clock: for durations only
    discontinuity: bool = False    # not continuous with the previous frame (a looped file started over)


class FrameSource:
    name = "source"
    live = False
    independent_frames = False   # frames unrelated to each other (a folder of photos): no tracking across them
    fps: float | None = None     # the source's own frame rate, when it has one
    unreadable: int = 0          # input files skipped because they could not be read

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
    """One image file, or every image of a folder (sorted), each once, ``repeat`` times, or
    forever (``repeat=None``: ``--loop``). In a folder an unreadable file is reported (logged,
    counted in ``unreadable``) and skipped; a single unreadable file is an error."""

    independent_frames = True
    fps = 1.0   # a video of the overlay shows each photo for a second

    def __init__(self, path: str | Path, repeat: int | None = 1, clock: Callable[[], int] = time.monotonic_ns):
        self.path = Path(path)
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise SourceError(f"{self.path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder",
                                  EXIT_BAD_INPUT)
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise SourceError(f"{self.path}: image file or folder not found", EXIT_BAD_INPUT)
        self.name = f"images:{self.path}"
        self.repeat = repeat
        self.clock = clock
        self._i = 0
        self._bad: set[Path] = set()
        self.unreadable = 0
        # repeated small sets are kept decoded (a demo, a soak test); large folders are read each time
        self._cache: dict[Path, np.ndarray] | None = {} if len(self.files) <= 64 else None

    def read(self) -> Frame | None:
        while True:
            if self.repeat is not None and self._i >= len(self.files) * self.repeat:
                return None
            if len(self._bad) == len(self.files):
                raise SourceError(f"{self.path}: none of its {len(self.files)} image(s) is readable", EXIT_BAD_INPUT)
            p = self.files[self._i % len(self.files)]
            self._i += 1
            if p in self._bad:
                continue
            img = self._cache.get(p) if self._cache is not None else None
            if img is None:
                img = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if img is None:
                    if len(self.files) == 1:
                        raise SourceError(f"{p}: not a readable image", EXIT_BAD_INPUT)
                    self._bad.add(p)
                    self.unreadable += 1
                    log.error("%s: not a readable image; skipped (the other images go on)", p)
                    continue
                if self._cache is not None and self.repeat != 1:
                    self._cache[p] = img
            return Frame(img, None, self._i - 1, self.clock())


class DemoSource(ImageSource):
    """matplotlib's ``grace_hopper.jpg`` (a real face), ``repeat`` times, like a still camera."""

    independent_frames = False
    fps = 15.0

    def __init__(self, repeat: int | None = 30, clock: Callable[[], int] = time.monotonic_ns):
        from emoedge.edge.runtime.demo import demo_image

        self.files = [Path("grace_hopper.jpg")]
        self._cache = {self.files[0]: demo_image()}
        self._bad = set()
        self.unreadable = 0
        self.path = self.files[0]
        self.name = "demo:grace_hopper.jpg"
        self.repeat = repeat
        self.clock = clock
        self._i = 0


class VideoFileSource(FrameSource):
    """A video file, frame by frame. Offline (default) every frame is processed and stamped with
    its media time. With ``realtime`` the file plays at its own frame rate on the pipeline's clock:
    the source waits when the pipeline is early and skips frames it is too slow for (counted as
    dropped). With ``loop`` it starts over at the end, forever (the first frame of each pass is
    marked as a discontinuity, so tracks do not jump across the cut)."""

    def __init__(self, path: str | Path, realtime: bool = False, clock: Callable[[], int] = time.monotonic_ns,
                 loop: bool = False, sleep: Callable[[float], None] = time.sleep):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: video file not found", EXIT_BAD_INPUT)
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise SourceError(f"{self.path}: not a readable video (OpenCV could not open it)", EXIT_BAD_INPUT)
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        self.name = f"video:{self.path}"
        self.realtime = realtime
        self.loop = loop
        self.clock = clock
        self.sleep = sleep
        self._next = 0          # frames delivered or skipped so far, over all passes
        self._in_pass = 0       # frames read in this pass
        self._dropped = 0
        self._t0: int | None = None
        self._stop = threading.Event()

    @property
    def dropped(self) -> int:
        return self._dropped

    def interrupt(self) -> None:
        self._stop.set()

    def _grab_next(self, decode: bool) -> tuple[bool, np.ndarray | None, bool]:
        """(ok, image, discontinuity): the next frame, starting over at the end when looping."""
        for attempt in range(2):
            if decode:
                ok, img = self.cap.read()
            else:
                ok, img = self.cap.grab(), None
            if ok:
                self._in_pass += 1
                return True, img, attempt == 1
            if not self.loop or self._in_pass == 0:
                return False, None, False
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)   # start over
            if self.cap.get(cv2.CAP_PROP_POS_FRAMES) != 0:  # a container that cannot seek: reopen it
                self.cap.release()
                self.cap = cv2.VideoCapture(str(self.path))
            self._in_pass = 0
        return False, None, False

    def read(self) -> Frame | None:
        now = self.clock()
        if self._t0 is None:
            self._t0 = now
        cut = False
        if self.realtime:
            due = int((now - self._t0) * self.fps / 1e9)  # the frame the clock says is current
            if due < self._next:  # early: wait for this frame's time
                wait_s = (self._t0 + self._next * 1e9 / self.fps - now) / 1e9
                if wait_s > 0 and self._stop.wait(wait_s):
                    return None
            while self._next < due:
                ok, _, c = self._grab_next(decode=False)
                if not ok:
                    return None
                cut |= c
                self._next += 1
                self._dropped += 1
        ok, img, c = self._grab_next(decode=True)
        if not ok or img is None:
            return None
        self._next += 1
        if self.realtime:
            stamp = self.clock()
        else:  # offline: the video's own timeline, so intervals are in media time
            stamp = self._t0 + int((self._next - 1) * 1e9 / self.fps)
        return Frame(img, None, self._next - 1, stamp, discontinuity=cut or c)

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
        else:
            self.fps = cap.get(cv2.CAP_PROP_FPS) or None  # what the camera reports, if anything
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
                lores: tuple[int, int] = (640, 360), repeat: int = 1, loop: bool = False) -> FrameSource:
    """``demo``, ``picamera``, a camera index/device/GStreamer pipeline, a video, an image or a folder.
    ``loop`` replays a file source (video, image, folder, demo) forever."""
    s = str(spec)
    if loop and (s in ("picamera", "picamera2") or s.isdigit() or s.startswith("/dev/video") or "!" in s):
        raise SourceError(f"{s}: --loop replays files (a video, an image or a folder); a camera is live already",
                          EXIT_BAD_INPUT)
    if s == "demo":
        return DemoSource(repeat=None if loop else (max(repeat, 1) if repeat > 1 else 30), clock=clock)
    if s in ("picamera", "picamera2"):
        size = (width or 1280, height or 720)
        return Picamera2Source(size=size, lores=lores, fps=fps, clock=clock)
    if s.isdigit() or s.startswith("/dev/video") or "!" in s:
        return OpenCVCameraSource(s, width, height, fps, clock=clock)
    p = Path(s)
    if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(p, repeat=None if loop else repeat, clock=clock)
    if p.suffix.lower() in VIDEO_SUFFIXES or p.is_file():
        return VideoFileSource(p, realtime=realtime, clock=clock, loop=loop)
    raise SourceError(f"{s}: not a source: expected demo, picamera, a camera index, /dev/videoN, a GStreamer "
                      f"pipeline, a video file, an image file or a folder of images", EXIT_BAD_INPUT)
