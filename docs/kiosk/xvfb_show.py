"""Show the kiosk screen in a real full-screen OpenCV window (emoedge's own DisplaySink) on an X
server, take a screenshot of the whole X screen (``xwd -root``) and compare it with the screen
rendered off-screen: run by docs/kiosk/xvfb_check.sh with Debian's python3 and python3-opencv (the
GUI OpenCV deploy/install.sh adds on kiosks), PYTHONPATH at the repository.

    DISPLAY=:N PYTHONPATH=. /usr/bin/python3 docs/kiosk/xvfb_show.py --size 1280x720 --out DIR \\
        [--image PHOTO --faces FACES.json]

FACES.json: {"class_names": [...], "faces": [{"box": [x, y, w, h], "label": ..., "confidence": ...,
"probs": [...]}, ...]} (what ``emoedge classify --json`` gives per face). Without it: a synthetic
frame and face. Writes DIR/{faces,idle}-{screenshot,rendered}.png and prints one JSON line of the
comparison; exit 0 when every screenshot shows the rendered screen, 1 when not."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from emoedge.edge.faces.tracking import Track
from emoedge.edge.outputs.kiosk_screen import faces_from_tracks, parse_size_px, render_kiosk_screen
from emoedge.edge.outputs.overlay import DisplaySink
from emoedge.edge.runtime.frames import Frame

MAX_MEAN_DIFF = 2.0          # mean absolute difference (0..255) allowed between screenshot and rendering


def read_xwd(path: Path) -> np.ndarray:
    """An X window dump (XWD version 7, 24/32 bits per pixel, TrueColor) as a BGR image."""
    raw = path.read_bytes()
    head = np.frombuffer(raw[:100], ">u4")
    header_size, version, width, height = int(head[0]), int(head[1]), int(head[4]), int(head[5])
    byte_order, bpp, bytes_per_line, ncolors = int(head[7]), int(head[11]), int(head[12]), int(head[19])
    masks = [int(m) for m in head[14:17]]
    if version != 7 or bpp != 32:
        raise ValueError(f"{path}: XWD version {version}, {bpp} bits per pixel: not handled (want 7, 32)")
    start = header_size + 12 * ncolors
    rows = np.frombuffer(raw[start:start + height * bytes_per_line], np.uint8).reshape(height, bytes_per_line)
    px = rows[:, :width * 4].copy().view("<u4" if byte_order == 0 else ">u4").reshape(height, width)
    out = np.empty((height, width, 3), np.uint8)
    for i, mask in enumerate(reversed(masks)):      # blue, green, red
        shift = (mask & -mask).bit_length() - 1
        out[:, :, i] = ((px & mask) >> shift).astype(np.uint8)
    return out


def load_input(image: str | None, faces_json: str | None):
    if image is None:
        img = np.full((480, 640, 3), 90, np.uint8)
        cv2.circle(img, (320, 220), 90, (150, 170, 200), -1)
        return img, ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"), [
            {"box": [230, 120, 180, 200], "label": "happy", "confidence": 0.71,
             "probs": [0.02, 0.01, 0.03, 0.71, 0.05, 0.08, 0.10]}]
    img = cv2.imread(image, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"{image}: not an image OpenCV can read")
    spec = json.loads(Path(faces_json).read_text()) if faces_json else {"class_names": [], "faces": []}
    return img, tuple(spec["class_names"]), spec["faces"]


def show_and_grab(sink: DisplaySink, frame: Frame, tracks, out: Path, name: str, display_s: float) -> np.ndarray:
    end = time.monotonic() + display_s
    while time.monotonic() < end:              # let the window map, resize and paint
        sink.on_frame(frame, tracks, 1.0)
        cv2.waitKey(20)
    xwd = out / f"{name}.xwd"
    subprocess.run(["xwd", "-root", "-silent", "-out", str(xwd)], check=True)
    shot = read_xwd(xwd)
    xwd.unlink()
    return shot


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720", help="the X screen's size (WIDTHxHEIGHT)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--image")
    ap.add_argument("--faces")
    ap.add_argument("--display-s", type=float, default=2.0)
    a = ap.parse_args(argv)
    size = parse_size_px(a.size)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    img, names, faces = load_input(a.image, a.faces)
    tracks = [Track(i + 1, tuple(float(v) for v in f["box"]), 0, 0, probs=np.asarray(f["probs"], np.float32),
                    label=f["label"], confidence=float(f["confidence"])) for i, f in enumerate(faces)]
    frame = Frame(img, None, 0, 0)
    sink = DisplaySink(fullscreen=True, screen="kiosk", labels=names, screen_size_px=size)
    result, ok = {"opencv": cv2.__version__, "numpy": np.__version__, "size": list(size)}, True
    try:
        for name, shown in (("faces", tracks), ("idle", [])):
            shot = show_and_grab(sink, frame, shown, out, name, a.display_s)
            want = render_kiosk_screen(img, faces_from_tracks(shown, 1.0, names), size)
            cv2.imwrite(str(out / f"{name}-screenshot.png"), shot)
            cv2.imwrite(str(out / f"{name}-rendered.png"), want.image)
            notice = next(d for d in want.drawn if d.kind == "notice").rect_px
            x, y, w, h = notice
            same = shot.shape == want.image.shape
            diff = float(np.abs(shot.astype(int) - want.image.astype(int)).mean()) if same else 255.0
            ndiff = (float(np.abs(shot[y:y + h, x:x + w].astype(int) - want.image[y:y + h, x:x + w]).mean())
                     if same else 255.0)
            result[name] = {"screenshot": list(shot.shape), "mean_abs_diff": round(diff, 3),
                            "notice_mean_abs_diff": round(ndiff, 3), "state": want.state}
            ok &= same and diff <= MAX_MEAN_DIFF and ndiff <= MAX_MEAN_DIFF
    finally:
        sink.close()
    result["ok"] = bool(ok)
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
