"""Live cameras: Picamera2 and an OpenCV camera (an index, a V4L2 path or a GStreamer pipeline).
A background thread grabs and keeps only the latest frame: stale frames are dropped (and
counted), never queued. A camera that stops delivering is reopened with the project's backoff
(:class:`emoedge.core.retry.Backoff`) before the source gives up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from emoedge.core.retry import Backoff
from emoedge.edge.runtime.frames import Frame, FrameSource, SourceError

log = logging.getLogger("emoedge.edge.runtime.sources")   # the sources' one logger, as before the split


class _LatestGrabber:
    """Runs ``grab()`` in a thread and keeps only the newest frame."""

    def __init__(self, grab: Callable[[], tuple[np.ndarray, np.ndarray | None] | None],
                 reopen: Callable[[], None], name: str, clock: Callable[[], int],
                 max_retries: int = 5, backoff_s: float = 0.5):
        self._grab, self._reopen, self.name, self.clock = grab, reopen, name, clock
        self.max_retries, self.backoff_s = max_retries, backoff_s
        # reconnects: backoff_s, doubled per failure (max_s is the last of the max_retries delays: no lower cap)
        self._backoff = Backoff(first_s=backoff_s, max_s=backoff_s * 2 ** max(max_retries - 1, 0),
                                attempts=max_retries)
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
        backoff = self._backoff
        while not self._stop.is_set():
            try:
                got = self._grab()
            except Exception as exc:  # a driver error is a failure like an empty read
                log.warning("%s: read failed: %s", self.name, exc)
                got = None
            if got is None:
                if backoff.exhausted:
                    with self._cond:
                        self._failed = f"{self.name}: no frames after {self.max_retries} reconnect attempts"
                        self._cond.notify_all()
                    return
                delay = backoff.next_delay_s()
                log.warning("%s: no frame; reconnecting in %.1f s (attempt %d/%d)", self.name, delay,
                            backoff.failures, self.max_retries)
                if self._stop.wait(delay):
                    return
                try:
                    self._reopen()
                except Exception as exc:
                    log.warning("%s: reopen failed: %s", self.name, exc)
                continue
            backoff.reset()
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
