"""The demo frame: a real face photo that ships with matplotlib, for `--source demo` and for
`classify` without an image."""

import cv2
import numpy as np


def demo_image() -> np.ndarray:
    """A real face photo that ships with matplotlib (``grace_hopper.jpg``), as BGR."""
    try:
        from matplotlib import cbook
    except ImportError as exc:
        raise RuntimeError("the demo image comes with matplotlib: pip install 'emoedge[plots]' "
                           "or give an image") from exc
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        data = np.frombuffer(fh.read(), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError("matplotlib's grace_hopper.jpg could not be decoded")
    return img
