"""Fakes for the runtime's injectable parts (a clock moved by hand, synthetic sources, detectors, a classifier, a wall
clock), a small test video and a small tmpfs to fill."""


import cv2
import numpy as np
import pytest

from emoedge.edge.runtime.sources import Frame, FrameSource, SourceError


class FakeClock:
    """A monotonic clock the test moves by hand (nanoseconds), for the runtime's injectable clocks."""

    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t

    def advance_ms(self, ms):
        self.t += int(ms * 1e6)


class SyntheticSource(FrameSource):
    """Frames with ``n_faces`` faces (as boxes only; the fake detector knows them)."""

    def __init__(self, clock, frames, shape=(240, 320, 3), capture_ms=1.0):
        self.clock, self.left, self.shape, self.capture_ms, self.i = clock, frames, shape, capture_ms, 0
        self.name = "synthetic"

    def read(self):
        if self.i >= self.left:
            return None
        self.clock.advance_ms(self.capture_ms)
        self.i += 1
        return Frame(np.zeros(self.shape, np.uint8), None, self.i - 1, self.clock())


class FakeDetector:
    name = "fake"

    def __init__(self, clock, faces, full_ms):
        self.clock, self.faces, self.full_ms, self.scales = clock, faces, full_ms, []

    def detect(self, frame, scale=1.0):
        self.scales.append(scale)
        self.clock.advance_ms(self.full_ms * scale * scale)
        return list(self.faces)


class _DyingCamera(FrameSource):
    """A live camera that delivers a few frames, then fails for good (after its reconnects)."""
    live = True
    name = "camera:dying"

    def __init__(self, clock, good):
        self.clock, self.good, self.i = clock, good, 0

    def read(self):
        if self.i >= self.good:
            raise SourceError("camera:dying: no frames after 5 reconnect attempts")
        self.i += 1
        self.clock.advance_ms(1)
        return Frame(np.zeros((120, 160, 3), np.uint8), None, self.i - 1, self.clock())

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class FakeClassifier:
    """Always 'happy' with 0.9: the pipeline's bookkeeping without a model."""
    class_names = CLASSES
    margin = 0.0

    def predict(self, batch):
        p = np.full((len(batch), 7), 0.1 / 6, np.float32)
        p[:, 3] = 0.9
        return p


def _video(path, frames=20, fps=10.0, size=(160, 120)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), 40 + 5 * i % 200, np.uint8)
        w.write(img)
    w.release()
    return path


class Wall:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        self.t += 10_000_000
        return self.t


def _tmpfs(path, size="64k"):
    import subprocess

    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill ({r.stderr.strip() or 'mount failed'}): needs root")
    return path
