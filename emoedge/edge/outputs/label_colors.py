"""One colour per label (BGR, as OpenCV draws), shared by the debug overlay and the kiosk screen, and
the WCAG 2 contrast arithmetic that picks black or white text for a coloured plate."""

from __future__ import annotations

import zlib

from emoedge.edge.faces.tracking import UNCERTAIN

# FER2013's 7 classes and FER+'s contempt; other label sets (3 classes of one's own, another
# model's names) get a colour of their own from their name (label_color)
COLORS = {"happy": (0, 200, 0), "surprise": (0, 200, 255), "neutral": (200, 200, 200), "sad": (255, 120, 0),
          "angry": (0, 0, 255), "fear": (180, 0, 180), "disgust": (0, 120, 120), "contempt": (120, 120, 0),
          UNCERTAIN: (128, 128, 128)}
# the FER+ vote names and other spellings of the same classes
ALIASES = {"happiness": "happy", "sadness": "sad", "anger": "angry", "surprised": "surprise",
           "fearful": "fear", "disgusted": "disgust", "unsure": UNCERTAIN}
BLACK = (0, 0, 0)
WHITE = (255, 255, 255)


def label_color(label: str | None) -> tuple[int, int, int]:
    """The BGR colour of ``label``: the table's, else a deterministic hue from the name's CRC-32
    (the same on every box and every run; saturated and bright enough to read on dark and light)."""
    name = (label or UNCERTAIN).strip().lower()
    name = ALIASES.get(name, name)
    if name in COLORS:
        return COLORS[name]
    hue = zlib.crc32(name.encode("utf-8")) % 360
    return _hsv_to_bgr(hue, 0.75, 0.9)


def _hsv_to_bgr(hue_deg: float, s: float, v: float) -> tuple[int, int, int]:
    c = v * s
    x = c * (1 - abs((hue_deg / 60) % 2 - 1))
    m = v - c
    sector = int(hue_deg // 60) % 6
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][sector]
    return tuple(int(round((ch + m) * 255)) for ch in (b, g, r))  # type: ignore[return-value]


def relative_luminance(bgr) -> float:
    """WCAG 2 relative luminance of an sRGB colour given as BGR 0..255."""
    def lin(c: float) -> float:
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    b, g, r = (float(v) for v in bgr)
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast_ratio(a, b) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21; 4.5 is the floor for normal text)."""
    la, lb = relative_luminance(a), relative_luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def text_color_on(plate_bgr) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``plate_bgr`` (at least 4.58:1 for any colour)."""
    return BLACK if contrast_ratio(BLACK, plate_bgr) >= contrast_ratio(WHITE, plate_bgr) else WHITE
