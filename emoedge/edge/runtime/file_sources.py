"""Frame sources that read files: an image or a folder of images, a video file (offline, or
played at its own frame rate with ``realtime``; looped with ``loop``), and ``demo`` (a real photo
that ships with matplotlib), so the main job runs on a machine without a camera.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from emoedge.core.errors import EXIT_BAD_INPUT, BadInputError
from emoedge.core.images import read_image
from emoedge.edge.runtime.frames import IMAGE_SUFFIXES, Frame, FrameSource, SourceError

log = logging.getLogger("emoedge.edge.runtime.sources")


def _refuse_too_large(path: Path) -> None:
    """A single image larger than the package's bound is refused before the first frame (exit 2)."""
    from emoedge.core.images import check_size

    try:
        with open(path, "rb") as fh:
            check_size(fh.read(1 << 18), str(path))   # the header (a JPEG's may follow up to 64 KB of EXIF)
    except BadInputError as exc:
        raise SourceError(str(exc), EXIT_BAD_INPUT) from None
    except OSError:
        pass                                          # unreadable: said when its frame is read


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
            _refuse_too_large(self.path)
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
                try:
                    img, why = read_image(p, cv2.IMREAD_COLOR), "not a readable image"
                except BadInputError as exc:      # larger than the package's bound: never decoded
                    img, why = None, str(exc)
                if img is None:
                    if len(self.files) == 1:
                        raise SourceError(why if why.startswith(str(p)) else f"{p}: {why}", EXIT_BAD_INPUT)
                    self._bad.add(p)
                    self.unreadable += 1
                    log.error("%s; skipped (the other images go on)", why if why.startswith(str(p)) else f"{p}: {why}")
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
