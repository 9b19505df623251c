"""emoedge: facial emotion recognition for edge devices (see the README and docs/architecture.md)."""

import os as _os

# OpenCV's own bound on decoded pixels (read once, when OpenCV loads; default 2^30): lowered to the
# package's bound (emoedge.core.images.MAX_IMAGE_PIXELS) for formats whose header the package does not read.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "40000000")
