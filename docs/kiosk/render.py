"""Render the kiosk screen (emoedge.edge.outputs.kiosk_screen) of a video's frames into PNGs, through
the runtime's own pipeline (detector, tracker, classifier, smoothing) as a kiosk runs it.

    python docs/kiosk/render.py --source ../shared/media/short_hamilton_clip.mp4 --frame 120 \\
        --size 1920x1080 --out kiosk-1080p.png
    python docs/kiosk/render.py --source ../shared/media/short_hamilton_clip.mp4 --readme docs/kiosk

``--readme DIR`` writes the README's screenshots: 720p, 1080p, 4K and portrait of one frame, and the
no-face screen, each rendered at its full size and then shrunk to 960 px on its long side.
Detector: BlazeFace from ``--detector-dir`` (default ../shared/detectors, else the fetch cache);
model: the kiosk profile's (ferplus7 int8)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from emoedge.edge.outputs.kiosk_screen import faces_from_tracks, render_kiosk_screen  # noqa: E402
from emoedge.edge.outputs.sinks import Sink  # noqa: E402

README_LONG_SIDE_PX = 960   # README screenshots: rendered at full size, then shrunk to this long side
README_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160), "portrait": (1080, 1920)}


class CaptureSink(Sink):
    """Keeps the frames whose index is asked for, with their tracks as screen faces."""

    def __init__(self, wanted: set[int], class_names=()):
        self.wanted = wanted
        self.class_names = class_names
        self.frames: dict[int, tuple[np.ndarray, tuple]] = {}

    def on_frame(self, frame, tracks, scale) -> None:
        if frame.index in self.wanted:
            self.frames[frame.index] = (frame.image.copy(), faces_from_tracks(tracks, scale, self.class_names))


def capture(source: str, frames: set[int], detector_dir: str | None = None, model: str = "ferplus7"):
    """``{frame index: (image, faces)}`` for the asked frames of ``source``, as the kiosk runs it."""
    from emoedge.edge.runtime.config import RuntimeConfig
    from emoedge.edge.runtime.pipeline import Pipeline

    c = RuntimeConfig(source=source, model=model, detector="blazeface", detector_dir=detector_dir,
                      detect_every=4, status_every_s=0, max_frames=max(frames) + 1, adapt=False, budget_ms=10_000)
    sink = CaptureSink(set(frames))
    p = Pipeline(c, sinks=[sink])
    sink.class_names = p.class_names
    p.run(max_frames=max(frames) + 1)
    return sink.frames


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit()):
        raise SystemExit(f"--size: expected WIDTHxHEIGHT (e.g. 1920x1080), got {text!r}")
    return int(w), int(h)


def thumbnail(image: np.ndarray, long_side_px: int = README_LONG_SIDE_PX) -> np.ndarray:
    """A screen rendered at its full size, shrunk for the README (PNGs of a few hundred KB)."""
    s = long_side_px / max(image.shape[:2])
    if s >= 1:
        return image
    return cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)), interpolation=cv2.INTER_AREA)


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"{path}: cannot write the PNG")
    print(f"{path}: {image.shape[1]}x{image.shape[0]}, {path.stat().st_size / 1024:.0f} KB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="a video file (or a camera) the pipeline reads")
    ap.add_argument("--frame", type=int, default=120, help="the frame index to render")
    ap.add_argument("--size", default="1920x1080", help="screen size WIDTHxHEIGHT")
    ap.add_argument("--out", help="the PNG to write")
    ap.add_argument("--readme", metavar="DIR", help="write the README's screenshots into DIR")
    ap.add_argument("--detector-dir", default=str(REPO.parent / "shared" / "detectors"))
    ap.add_argument("--model", default="ferplus7")
    a = ap.parse_args(argv)
    ddir = a.detector_dir if Path(a.detector_dir).is_dir() else None
    got = capture(a.source, {a.frame}, ddir, a.model)
    if a.frame not in got:
        raise SystemExit(f"{a.source}: has no frame {a.frame}")
    image, faces = got[a.frame]
    if a.readme:
        out = Path(a.readme)
        for name, size in README_SIZES.items():
            write_png(out / f"kiosk-{name}.png", thumbnail(render_kiosk_screen(image, faces, size).image))
        write_png(out / "kiosk-idle.png", thumbnail(render_kiosk_screen(image, (), README_SIZES["720p"]).image))
    if a.out:
        write_png(Path(a.out), render_kiosk_screen(image, faces, parse_size(a.size)).image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
