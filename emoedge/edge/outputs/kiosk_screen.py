"""The kiosk screen a visitor sees: the camera frame letterboxed into the screen, each face in a
thick box of its label's colour with its label on a contrasting plate, the top classes of the
largest face as bars, a calm dimmed frame with one friendly line when nobody is there, and always a
notice line at the bottom (what is inferred, that no image is kept). Sizes follow the screen
(720p to 4K, landscape or portrait), never fixed pixels; drawn with OpenCV alone (no GUI toolkit).

Pure rendering: a frame and its faces in, a screen image of the requested size out, with the
list of what was drawn where (the tests check their layout rules against it and the pixels)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from emoedge.edge.faces.tracking import UNCERTAIN
from emoedge.edge.outputs.label_colors import WHITE, label_color, text_color_on

FONT = cv2.FONT_HERSHEY_SIMPLEX
NOTICE = "Estimates facial expressions on this screen only - no images are stored"
IDLE_LINE = "Hello! Look at the camera to see your expression"
BACKGROUND_BGR = (24, 22, 20)        # the letterbox and the screen around the frame
PANEL_BGR = (34, 30, 28)             # the bars' panel and the notice band: white text on it is ~16:1
BAR_TRACK_BGR = (78, 72, 68)         # the empty part of a bar
IDLE_DIM = 0.35                      # the frame's brightness when nobody is there
MIN_SCREEN_PX, MAX_SCREEN_PX = 160, 8192
TOP_K = 3
NOTICE_PITCH = 2.0                   # baseline to baseline of a two-line notice, in cap heights


@dataclass(frozen=True)
class ScreenFace:
    """One face as the screen shows it: its box in frame pixels, its label (a class, ``uncertain``,
    or None before its first classification), confidence and its classes' shares, largest first."""
    box_px: tuple[float, float, float, float]
    label: str | None
    confidence: float
    shares: tuple[tuple[str, float], ...] = ()
    track_id: int | None = None


@dataclass(frozen=True)
class KioskLayout:
    """Every size of the screen, computed from the screen's and the frame's sizes alone."""
    screen_width_px: int
    screen_height_px: int
    frame_rect_px: tuple[int, int, int, int]     # where the camera frame goes (x, y, w, h), letterboxed
    frame_scale: float                           # frame pixels -> screen pixels
    margin_px: int
    text_height_px: int                          # cap height of labels and the idle line (>= 1/30 of the height)
    text_thickness_px: int
    plate_padding_px: int
    box_thickness_px: int
    bar_text_height_px: int
    bar_height_px: int
    panel_width_px: int
    panel_below_frame: bool                      # portrait: the bars in the free space under the frame
    notice_text_height_px: int
    notice_thickness_px: int
    notice_band_height_px: int
    notice_lines: tuple[str, ...]

    @classmethod
    def for_screen(cls, screen_w: int, screen_h: int, frame_w: int, frame_h: int) -> KioskLayout:
        for name, v in (("screen width", screen_w), ("screen height", screen_h)):
            if not MIN_SCREEN_PX <= int(v) <= MAX_SCREEN_PX:
                raise ValueError(f"{name} must be {MIN_SCREEN_PX}..{MAX_SCREEN_PX} px, got {v}")
        if frame_w < 1 or frame_h < 1:
            raise ValueError(f"frame size must be positive, got {frame_w}x{frame_h}")
        short = min(screen_w, screen_h)
        margin = max(4, round(short / 60))
        text_h = math.ceil(screen_h / 28)
        notice_h = max(10, math.ceil(screen_h / 50))
        notice_thick = max(1, round(notice_h / 12))
        lines = _notice_lines(screen_w - 2 * margin, notice_h, notice_thick)
        notice_h = min(notice_h, _fit_height(lines, screen_w - 2 * margin, notice_thick))
        band = round(notice_h * (NOTICE_PITCH * (len(lines) - 1) + 2.6))
        area_w, area_h = screen_w, screen_h - band
        s = min(area_w / frame_w, area_h / frame_h)
        fw, fh = max(1, round(frame_w * s)), max(1, round(frame_h * s))
        portrait = screen_h > screen_w
        bar_text_h = math.ceil(text_h * 0.75)
        bar_h = max(4, round(bar_text_h * 0.55))
        panel_h = _panel_height(margin, bar_text_h, bar_h)
        below = portrait and area_h - fh >= panel_h + 2 * margin
        # the frame and the bars under it as one block, centred in portrait; the frame alone in landscape
        fy = (area_h - fh - (panel_h + margin if below else 0)) // 2
        return cls(screen_w, screen_h, ((area_w - fw) // 2, fy, fw, fh), s, margin, text_h,
                   max(2, round(text_h / 11)), max(3, round(text_h * 0.4)), max(2, round(short / 150)),
                   bar_text_h, bar_h, screen_w - 2 * margin if portrait else round(screen_w * 0.3), below,
                   notice_h, notice_thick, band, lines)


@dataclass(frozen=True)
class Drawn:
    """One thing drawn: ``kind`` box | label | panel | bar | idle | notice; its rectangle on the
    screen; its text and colours (text on plate) where it has them; a bar's share (0..1)."""
    kind: str
    rect_px: tuple[int, int, int, int]
    text: str = ""
    text_bgr: tuple[int, int, int] | None = None
    plate_bgr: tuple[int, int, int] | None = None
    text_height_px: int = 0
    share: float | None = None


@dataclass(frozen=True)
class KioskScreen:
    image: np.ndarray          # BGR, screen_height_px x screen_width_px
    layout: KioskLayout
    drawn: tuple[Drawn, ...]
    state: str                 # "faces" | "idle"


def parse_size_px(text: str) -> tuple[int, int]:
    """``"1920x1080"`` -> ``(1920, 1080)``, each side within the screen bounds (ValueError otherwise)."""
    w, sep, h = str(text).strip().lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and len(w) <= 5 and len(h) <= 5):
        raise ValueError(f"expected WIDTHxHEIGHT in pixels (e.g. 1920x1080), got {str(text)[:40]!r}")
    if not (MIN_SCREEN_PX <= int(w) <= MAX_SCREEN_PX and MIN_SCREEN_PX <= int(h) <= MAX_SCREEN_PX):
        raise ValueError(f"each side must be {MIN_SCREEN_PX}..{MAX_SCREEN_PX} px, got {w}x{h}")
    return int(w), int(h)


def font_scale_for(cap_height_px: float, thickness: int) -> float:
    """The Hershey scale whose capital letters are ``cap_height_px`` tall (strokes included)."""
    (_, h1), _ = cv2.getTextSize("H", FONT, 1.0, thickness)
    return max(0.1, (cap_height_px - thickness) / max(1, h1 - thickness))


def text_width(text: str, cap_height_px: float, thickness: int) -> int:
    return cv2.getTextSize(text, FONT, font_scale_for(cap_height_px, thickness), thickness)[0][0]


def _fit_height(lines: Sequence[str], width_px: int, thickness: int) -> int:
    """The largest cap height at which every line fits ``width_px``."""
    widest = max(lines, key=lambda t: text_width(t, 100, thickness))
    return max(6, int(100 * width_px / max(1, text_width(widest, 100, thickness))))


def _notice_lines(width_px: int, cap_px: int, thickness: int) -> tuple[str, ...]:
    """The notice on one line, or on two when one would be under 60% of its height (narrow portrait)."""
    if _fit_height([NOTICE], width_px, thickness) >= 0.6 * cap_px:
        return (NOTICE,)
    head, _, tail = NOTICE.partition(" - ")
    return (head, tail[:1].upper() + tail[1:])


def _panel_height(margin: int, bar_text_h: int, bar_h: int) -> int:
    return 2 * margin + TOP_K * (bar_text_h + bar_h + round(bar_text_h * 0.9))


def percent(share: float) -> int:
    """A share as a whole percentage, rounded down (a hundredth of a point of float noise forgiven: a
    float32 0.71 is 71%), so the top classes shown never add up to more than 100%."""
    return int(min(1.0, max(0.0, float(share))) * 100 + 0.01)


def display_label(label: str | None) -> str:
    if label is None:
        return "..."
    return "Unsure" if label == UNCERTAIN else label[:1].upper() + label[1:]


def shares_of(probs, class_names: Sequence[str], top_k: int = TOP_K) -> tuple[tuple[str, float], ...]:
    """The ``top_k`` classes of a probability vector, largest first (ties in class order)."""
    if probs is None or len(probs) != len(class_names):
        return ()
    p = np.clip(np.nan_to_num(np.asarray(probs, dtype=np.float64)), 0.0, 1.0)
    order = sorted(range(len(p)), key=lambda i: (-p[i], i))[:top_k]
    return tuple((str(class_names[i]), float(p[i])) for i in order)


def faces_from_tracks(tracks, scale: float, class_names: Sequence[str]) -> tuple[ScreenFace, ...]:
    """The runtime's tracks (boxes in work-plane pixels, ``scale`` to the frame) as screen faces."""
    return tuple(ScreenFace(tuple(float(v) * scale for v in t.box), t.label, float(t.confidence),
                            shares_of(t.probs, class_names), t.track_id) for t in tracks)


def faces_from_predictions(preds, class_names: Sequence[str]) -> tuple[ScreenFace, ...]:
    """``FaceClassifier.classify_image``'s predictions (one photo) as screen faces."""
    return tuple(ScreenFace(tuple(float(v) for v in p.face.box), p.label, float(p.confidence),
                            shares_of(p.probs, class_names)) for p in preds)


def _put_text(img: np.ndarray, text: str, x: int, y_base: int, cap_px: int, thick: int, color) -> None:
    cv2.putText(img, text, (x, y_base), FONT, font_scale_for(cap_px, thick), color, thick, cv2.LINE_AA)


def _clamp_rect(x: int, y: int, w: int, h: int, sw: int, sh: int) -> tuple[int, int, int, int]:
    w, h = min(w, sw), min(h, sh)
    return max(0, min(x, sw - w)), max(0, min(y, sh - h)), w, h


def _plate(img, text: str, x: int, y: int, cap_px: int, thick: int, pad: int, plate_bgr, kind: str,
           bottom_limit: int | None = None) -> Drawn:
    """``text`` on an opaque plate whose top-left is near (x, y), kept inside the screen."""
    sh, sw = img.shape[:2]
    tw = text_width(text, cap_px, thick)
    w, h = tw + 2 * pad, cap_px + 2 * pad
    x, y, w, h = _clamp_rect(x, y, w, h, sw, bottom_limit or sh)
    color = text_color_on(plate_bgr)
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), plate_bgr, cv2.FILLED)
    _put_text(img, text, x + pad, y + pad + cap_px, cap_px, thick, color)
    return Drawn(kind, (x, y, w, h), text, color, tuple(plate_bgr), cap_px)


def _place_frame(image: np.ndarray, lay: KioskLayout, dim: float) -> np.ndarray:
    """The frame scaled into its rectangle, the rest of the screen the background (one border copy)."""
    img = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    x, y, w, h = lay.frame_rect_px
    interp = cv2.INTER_AREA if lay.frame_scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(img[:, :, :3], (w, h), interpolation=interp)
    if dim < 1.0:
        scaled = cv2.convertScaleAbs(scaled, alpha=dim)
    return cv2.copyMakeBorder(scaled, y, lay.screen_height_px - y - h, x, lay.screen_width_px - x - w,
                              cv2.BORDER_CONSTANT, value=BACKGROUND_BGR)


def _draw_face(out: np.ndarray, lay: KioskLayout, f: ScreenFace, featured: bool = False) -> tuple[Drawn, Drawn]:
    """A face's box (twice as thick for the face whose bars are shown, when there are several), then
    (for drawing after every box) its label plate above it, or below when there is no room above."""
    fx, fy, _, _ = lay.frame_rect_px
    s = lay.frame_scale
    x0, y0 = round(fx + f.box_px[0] * s), round(fy + f.box_px[1] * s)
    x1, y1 = round(fx + (f.box_px[0] + f.box_px[2]) * s), round(fy + (f.box_px[1] + f.box_px[3]) * s)
    limit_y = lay.screen_height_px - lay.notice_band_height_px
    x0, x1 = sorted((max(0, min(x0, lay.screen_width_px - 1)), max(0, min(x1, lay.screen_width_px - 1))))
    y0, y1 = sorted((max(0, min(y0, limit_y - 1)), max(0, min(y1, limit_y - 1))))
    color = label_color(f.label)
    t = lay.box_thickness_px * (2 if featured else 1)
    cv2.rectangle(out, (x0, y0), (x1, y1), color, t, cv2.LINE_AA)
    text = display_label(f.label) + (f" {percent(f.confidence)}%" if f.label not in (None, UNCERTAIN) else "")
    plate_h = lay.text_height_px + 2 * lay.plate_padding_px
    ly = y0 - plate_h if y0 - plate_h >= 0 else min(y1 + 1, limit_y - plate_h)
    plate = Drawn("label", (x0 - t // 2, ly, 0, 0), text, plate_bgr=color)
    return Drawn("box", (x0, y0, x1 - x0 + 1, y1 - y0 + 1), plate_bgr=color), plate


def _featured(faces: Sequence[ScreenFace], frame_w: float, frame_h: float) -> ScreenFace | None:
    """The face whose classes are shown as bars: the largest, then the most central."""
    scored = [f for f in faces if f.shares]
    if not scored:
        return None

    def key(f: ScreenFace):
        cx, cy = f.box_px[0] + f.box_px[2] / 2, f.box_px[1] + f.box_px[3] / 2
        return (-round(f.box_px[2] * f.box_px[3]), math.hypot(cx - frame_w / 2, cy - frame_h / 2))
    return min(scored, key=key)


def _overlap_px(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h)


def _panel_rect(lay: KioskLayout, face: ScreenFace, avoid: Sequence[Drawn]) -> tuple[int, int, int, int]:
    """Where the bars go: under the frame (portrait with room), else the corner that hides the least of
    the faces and their labels (first choice: the top corner away from the featured face)."""
    m = lay.margin_px
    w, h = lay.panel_width_px, _panel_height(m, lay.bar_text_height_px, lay.bar_height_px)
    fx, fy, fw, fh = lay.frame_rect_px
    area_h = lay.screen_height_px - lay.notice_band_height_px
    if lay.panel_below_frame:
        return _clamp_rect(m, fy + fh + m, w, h, lay.screen_width_px, area_h)
    left, right = m, lay.screen_width_px - w - m
    top, bottom = m, area_h - h - m
    centre = fx + (face.box_px[0] + face.box_px[2] / 2) * lay.frame_scale
    away, near = (left, right) if centre > lay.screen_width_px / 2 else (right, left)
    corners = [(away, top), (near, top), (away, bottom), (near, bottom)]
    if lay.screen_height_px > lay.screen_width_px:
        corners = corners[2:] + corners[:2]
    rects = [_clamp_rect(x, y, w, h, lay.screen_width_px, area_h) for x, y in corners]
    return min(rects, key=lambda r: sum(_overlap_px(r, d.rect_px) for d in avoid if d.kind in ("box", "label")))


def _draw_bars(out: np.ndarray, lay: KioskLayout, face: ScreenFace, avoid: Sequence[Drawn] = ()) -> list[Drawn]:
    """The featured face's top classes: a name and a percentage over a bar in the class's colour."""
    m, th, bh = lay.margin_px, lay.bar_text_height_px, lay.bar_height_px
    row = th + bh + round(th * 0.9)
    x, y, w, h = _panel_rect(lay, face, avoid)
    cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), PANEL_BGR, cv2.FILLED)
    drawn = [Drawn("panel", (x, y, w, h), plate_bgr=PANEL_BGR)]
    thick = max(1, round(lay.text_thickness_px * 0.8))
    inner = w - 2 * m
    for i, (name, share) in enumerate(face.shares[:TOP_K]):
        ty = y + m + i * row
        name_txt, pct_txt = display_label(name), f"{percent(share)}%"
        _put_text(out, name_txt, x + m, ty + th, th, thick, WHITE)
        pw = text_width(pct_txt, th, thick)
        _put_text(out, pct_txt, x + w - m - pw, ty + th, th, thick, WHITE)
        drawn.append(Drawn("bar_text", (x + m, ty, inner, th), f"{name_txt} {pct_txt}", WHITE, PANEL_BGR, th))
        by = ty + th + round(th * 0.35)
        cv2.rectangle(out, (x + m, by), (x + m + inner - 1, by + bh - 1), BAR_TRACK_BGR, cv2.FILLED)
        fill = int(inner * min(1.0, max(0.0, share)))
        if fill > 0:
            cv2.rectangle(out, (x + m, by), (x + m + fill - 1, by + bh - 1), label_color(name), cv2.FILLED)
        drawn.append(Drawn("bar", (x + m, by, max(fill, 0), bh), name, plate_bgr=label_color(name), share=share))
    return drawn


def _draw_notice(out: np.ndarray, lay: KioskLayout) -> Drawn:
    sw, sh, band = lay.screen_width_px, lay.screen_height_px, lay.notice_band_height_px
    cv2.rectangle(out, (0, sh - band), (sw - 1, sh - 1), PANEL_BGR, cv2.FILLED)
    th, thick = lay.notice_text_height_px, lay.notice_thickness_px
    pitch = round(th * NOTICE_PITCH)
    y = sh - band + (band - th - pitch * (len(lay.notice_lines) - 1)) // 2 + th
    for line in lay.notice_lines:
        tw = text_width(line, th, thick)
        _put_text(out, line, (sw - tw) // 2, y, th, thick, WHITE)
        y += pitch
    return Drawn("notice", (0, sh - band, sw, band), " ".join(lay.notice_lines), WHITE, PANEL_BGR, th)


def wrap_words(text: str, width_px: int, cap_px: int, thickness: int) -> tuple[str, ...]:
    """``text`` in lines no wider than ``width_px`` at ``cap_px`` (a word wider than that stays whole)."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", cap_px, thickness) <= width_px:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return tuple(lines)


def _draw_idle(out: np.ndarray, lay: KioskLayout) -> Drawn:
    """Nobody there: one friendly line (wrapped on a narrow screen) on a plate in the middle."""
    area_h = lay.screen_height_px - lay.notice_band_height_px
    cap, thick, pad = lay.text_height_px, lay.text_thickness_px, lay.plate_padding_px
    lines = wrap_words(IDLE_LINE, lay.screen_width_px - 2 * lay.margin_px - 2 * pad, cap, thick)
    cap = min(cap, _fit_height(lines, lay.screen_width_px - 2 * lay.margin_px - 2 * pad, thick))
    pitch = round(cap * NOTICE_PITCH)
    w = max(text_width(t, cap, thick) for t in lines) + 2 * pad
    h = cap + pitch * (len(lines) - 1) + 2 * pad
    x, y, w, h = _clamp_rect((lay.screen_width_px - w) // 2, (area_h - h) // 2, w, h, lay.screen_width_px, area_h)
    cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), PANEL_BGR, cv2.FILLED)
    color = text_color_on(PANEL_BGR)
    for i, line in enumerate(lines):
        _put_text(out, line, x + (w - text_width(line, cap, thick)) // 2, y + pad + cap + i * pitch, cap, thick,
                  color)
    return Drawn("idle", (x, y, w, h), " ".join(lines), color, PANEL_BGR, cap)


def render_kiosk_screen(image: np.ndarray, faces: Sequence[ScreenFace], size_px: tuple[int, int],
                        layout: KioskLayout | None = None) -> KioskScreen:
    """The screen (``size_px`` = (width, height)) for one frame and its faces (boxes in frame pixels)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError("the frame must be a uint8 image (H x W or H x W x 3)")
    fh, fw = image.shape[:2]
    lay = layout or KioskLayout.for_screen(int(size_px[0]), int(size_px[1]), fw, fh)
    state = "faces" if faces else "idle"
    out = _place_frame(image, lay, 1.0 if faces else IDLE_DIM)
    drawn: list[Drawn] = []
    if faces:
        featured = _featured(faces, fw, fh)
        boxes, plates = zip(*(_draw_face(out, lay, f, f is featured and len(faces) > 1)   # the largest on top
                              for f in sorted(faces, key=lambda f: f.box_px[2] * f.box_px[3])))
        drawn += boxes
        limit_y = lay.screen_height_px - lay.notice_band_height_px
        drawn += [_plate(out, p.text, p.rect_px[0], p.rect_px[1], lay.text_height_px, lay.text_thickness_px,
                         lay.plate_padding_px, p.plate_bgr, "label", limit_y) for p in plates]
        if featured is not None:
            drawn += _draw_bars(out, lay, featured, drawn)
    else:
        drawn.append(_draw_idle(out, lay))
    drawn.append(_draw_notice(out, lay))
    return KioskScreen(out, lay, tuple(drawn), state)
