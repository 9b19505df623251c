"""Frame sources behind one interface: Picamera2, an OpenCV camera (index, V4L2 path or
GStreamer pipeline), a video file, an image file or folder, and ``demo`` (a real photo that
ships with matplotlib), so the main job runs on a machine without a camera.

``read()`` returns the newest frame to work on, or ``None`` at the end. Live sources grab in a
background thread that keeps only the latest frame: stale frames are dropped (and counted),
never queued. A camera that stops delivering is reopened with backoff before the source gives up.

This module picks a source from a ``--source`` string (:func:`open_source`) and is where the
sources are imported from; they live by job in :mod:`~emoedge.edge.runtime.frames` (the
interface), :mod:`~emoedge.edge.runtime.file_sources` (images, video, demo) and
:mod:`~emoedge.edge.runtime.camera_sources` (live cameras).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from emoedge.core.errors import EXIT_BAD_INPUT
from emoedge.edge.runtime.camera_sources import OpenCVCameraSource, Picamera2Source, _LatestGrabber, _LiveSource
from emoedge.edge.runtime.file_sources import DemoSource, ImageSource, VideoFileSource
from emoedge.edge.runtime.frames import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Frame, FrameSource, SourceError

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "DemoSource", "Frame", "FrameSource", "ImageSource",
           "OpenCVCameraSource", "Picamera2Source", "SourceError", "VideoFileSource", "_LatestGrabber",
           "_LiveSource", "open_source"]


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
