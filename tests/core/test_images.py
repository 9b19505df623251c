"""emoedge.core.images: image files read as hostile input (sizes from headers before decoding)."""

import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from emoedge.core.errors import BadInputError
from emoedge.core.images import MAX_IMAGE_PIXELS, decode_image, header_size, read_image


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose IHDR claims w x h (the pixel data is a tiny valid-looking stream: never decoded)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp"])
def test_header_sizes_match_what_opencv_decodes(ext):
    img = np.random.default_rng(0).integers(0, 255, (37, 61, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    assert header_size(buf.tobytes()) == (61, 37)


def test_gif_and_unknown_headers():
    assert header_size(b"GIF89a" + struct.pack("<HH", 640, 480) + b"\x00" * 8) == (640, 480)
    assert header_size(b"not an image at all") is None
    assert header_size(b"") is None
    assert header_size(b"\xff\xd8\xff") is None           # a truncated JPEG


def test_a_12000_by_12000_png_is_refused_before_decoding(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(png_header_only(12000, 12000))
    assert MAX_IMAGE_PIXELS < 12000 * 12000
    with pytest.raises(BadInputError, match=r"big.png: the image is 12000 x 12000 pixels"):
        read_image(big)
    with pytest.raises(BadInputError, match="12000 x 12000"):
        decode_image(big.read_bytes(), cv2.IMREAD_COLOR, "upload")


def test_ordinary_images_decode_and_unreadable_ones_are_none(tmp_path):
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), np.full((20, 30, 3), 7, np.uint8))
    assert read_image(p).shape == (20, 30, 3)
    assert read_image(p, cv2.IMREAD_GRAYSCALE).shape == (20, 30)
    (tmp_path / "junk.png").write_bytes(b"junk")
    assert read_image(tmp_path / "junk.png") is None
    assert read_image(tmp_path / "missing.png") is None
    os.mkfifo(tmp_path / "fifo.png")                      # would block a plain open()
    assert read_image(tmp_path / "fifo.png") is None


def test_opencvs_own_limit_is_lowered_for_formats_not_read_here():
    import subprocess
    import sys

    code = "import emoedge, os; print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"})
    assert int(out.stdout) == MAX_IMAGE_PIXELS


def test_classify_refuses_an_oversized_image_with_exit_2(tmp_path, capsys):
    from emoedge.cli import main

    big = tmp_path / "big.png"
    big.write_bytes(png_header_only(12000, 12000))
    assert main(["classify", "--image", str(big), "--model", "fast"]) == 2
    assert "12000 x 12000 pixels" in capsys.readouterr().err
