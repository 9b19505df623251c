"""What every frame source is: a :class:`Frame`, the :class:`FrameSource` interface, the
:class:`SourceError` a source raises, and the file suffixes the sources (and the project's folder
readers) recognise. The sources themselves: :mod:`emoedge.edge.runtime.file_sources` (images, a
video, the demo photo) and :mod:`emoedge.edge.runtime.camera_sources` (live cameras);
:func:`emoedge.edge.runtime.sources.open_source` picks one from a ``--source`` string.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emoedge.core.errors import EXIT_SOURCE, EmoedgeError

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
