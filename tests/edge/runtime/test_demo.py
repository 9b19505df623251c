"""The built-in demo image (emoedge.edge.runtime.demo)."""

from emoedge.edge.faces.detect import HaarDetector
from emoedge.edge.runtime.demo import demo_image


def test_demo_image_has_one_face_found_by_haar():
    img = demo_image()
    assert img.ndim == 3 and img.shape[2] == 3
    faces = HaarDetector().detect(img)
    assert len(faces) == 1 and faces[0].w > 100
