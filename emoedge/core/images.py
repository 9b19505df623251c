"""Image files read as hostile input: the one place the package decodes an image from a file or
bytes (run's image and folder sources, classify, the photo evaluation, folder datasets, calibration
folders). Before OpenCV decodes anything, the file's size is bounded and the image's width and height
are read from its header (PNG, JPEG, GIF, BMP, WebP: written here, a few lines each, so the device
install needs no imaging library beyond OpenCV) and refused above ``MAX_IMAGE_PIXELS``: a 442 KB PNG
of 12000x12000 pixels would otherwise take ~3.7 GB for one frame. Formats whose header is not read
here are left to OpenCV's own limit, which ``emoedge/__init__.py`` lowers to the same number
(``OPENCV_IO_MAX_IMAGE_PIXELS``, read when OpenCV loads)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from emoedge.core.errors import BadInputError

MAX_IMAGE_PIXELS = 40_000_000      # 40 MP: a 7,300 x 5,500 photo; 120 MB as 8-bit BGR
MAX_IMAGE_BYTES = 64 << 20         # 64 MiB of file


def _png(h: bytes):
    if h[:8] == b"\x89PNG\r\n\x1a\n" and h[12:16] == b"IHDR":
        return struct.unpack(">II", h[16:24])
    return None


def _gif(h: bytes):
    return struct.unpack("<HH", h[6:10]) if h[:6] in (b"GIF87a", b"GIF89a") else None


def _bmp(h: bytes):
    if h[:2] == b"BM" and len(h) >= 26:
        w, hh = struct.unpack("<ii", h[18:26])
        return abs(w), abs(hh)
    return None


def _webp(h: bytes):
    if h[:4] != b"RIFF" or h[8:12] != b"WEBP":
        return None
    kind = h[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(h[24:27], "little"), 1 + int.from_bytes(h[27:30], "little")
    if kind == b"VP8L":
        b = int.from_bytes(h[21:25], "little")
        return 1 + (b & 0x3FFF), 1 + ((b >> 14) & 0x3FFF)
    if kind == b"VP8 ":
        w, hh = struct.unpack("<HH", h[26:30])
        return w & 0x3FFF, hh & 0x3FFF
    return None


def _jpeg(data: bytes):
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:                     # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            hh, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, hh
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header, or None when the format is not one read here."""
    for probe in (_png, _gif, _bmp, _webp, _jpeg):
        try:
            size = probe(data)
        except (struct.error, IndexError):
            size = None
        if size is not None:
            return int(size[0]), int(size[1])
    return None


def check_size(data: bytes, where: str, error: type[Exception] = BadInputError) -> None:
    """Refuse an image whose header says it is larger than ``MAX_IMAGE_PIXELS``."""
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise error(f"{where}: the image is {size[0]} x {size[1]} pixels, more than {MAX_IMAGE_PIXELS:,} "
                    f"({MAX_IMAGE_PIXELS / 1e6:g} MP); refused (scale it down)")


def decode_image(data: bytes, flags: int, where: str, error: type[Exception] = BadInputError):
    """``cv2.imdecode`` of bytes after the size check; None when OpenCV cannot decode them."""
    import cv2

    if len(data) > MAX_IMAGE_BYTES:
        raise error(f"{where}: {len(data):,} bytes, more than {MAX_IMAGE_BYTES >> 20} MiB for one image; refused")
    check_size(data, where, error)
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None


def read_image(path: str | Path, flags: int | None = None, error: type[Exception] = BadInputError):
    """An image file decoded by OpenCV (``flags``: default ``cv2.IMREAD_COLOR``) after the size checks;
    None when it cannot be read or decoded (the caller says what that means); ``error`` when it is too large."""
    import stat

    import cv2

    p = Path(path)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):          # a FIFO would block, a device never end
            return None
        if st.st_size > MAX_IMAGE_BYTES:
            raise error(f"{p}: {st.st_size:,} bytes, more than {MAX_IMAGE_BYTES >> 20} MiB for one image; refused")
        with open(p, "rb") as fh:
            data = fh.read(MAX_IMAGE_BYTES + 1)
    except OSError:
        return None
    return decode_image(data, cv2.IMREAD_COLOR if flags is None else flags, str(p), error)
