"""The crop-geometry fit (emoedge.benchmarks.crop_fit): a known geometry recovered, missed faces counted, faces
embedded where said."""

import cv2
import numpy as np
import pytest

from emoedge.benchmarks.crop_fit import embed_face, fit_geometry, validate_geometries
from emoedge.core.preprocess import IDENTITY, CropGeometry, preprocess_faces
from emoedge.edge.faces.detect import Face


class GeometryDetector:
    """Returns, for the face embedded by ``embed_face``, the box a detector with ``truth`` as its
    crop geometry would draw: the training crop shrunk/shifted by the inverse of ``truth``."""
    name = "scripted"
    crop = IDENTITY

    def __init__(self, truth: CropGeometry):
        self.truth = truth
        self.frames = []

    def detect(self, frame, scale=1.0):
        # the embedded face is the only non-replicated region: find it from the frame's size
        # (embed_face: face side s, border s on each side, shifted by at most s/4)
        side = frame.shape[0] / 3.0
        x, y = self.where
        t = self.truth
        w, h = side / t.scale_x, side / t.scale_y
        cx, cy = x + side / 2 - t.shift_x * w, y + side / 2 - t.shift_y * h
        return [Face(int(round(cx - w / 2)), int(round(cy - h / 2)), int(round(w)), int(round(h)))]


def test_fit_recovers_a_known_geometry(monkeypatch):
    truth = CropGeometry(scale_x=1.2, scale_y=1.1, shift_x=0.02, shift_y=-0.08)
    det = GeometryDetector(truth)
    import emoedge.benchmarks.crop_fit as cf

    real_embed = cf.embed_face

    def spying_embed(face, side_px, rng, context=cf.CONTEXT):
        frame, crop = real_embed(face, side_px, rng, context)
        det.where = crop[:2]
        return frame, crop

    monkeypatch.setattr(cf, "embed_face", spying_embed)
    faces = np.random.default_rng(0).integers(0, 255, (40, 48, 48)).astype(np.uint8)
    fit = fit_geometry(det, faces)
    assert fit.n_found == 40
    g = fit.geometry
    assert g.scale_x == pytest.approx(1.2, abs=0.02) and g.scale_y == pytest.approx(1.1, abs=0.02)
    assert g.shift_x == pytest.approx(0.02, abs=0.01) and g.shift_y == pytest.approx(-0.08, abs=0.01)
    # the fitted geometry gives back the embedded 48x48 face, the raw box does not
    face = faces[0]
    frame, crop = spying_embed(face, 144, np.random.default_rng(3))
    box = det.detect(frame)[0].box
    back = (preprocess_faces(frame, [box], geometry=g)[0, :, :, 0] * 255).astype(np.float32)
    raw = (preprocess_faces(frame, [box])[0, :, :, 0] * 255).astype(np.float32)
    ref = cv2.resize(cv2.resize(face, (144, 144), interpolation=cv2.INTER_CUBIC), (48, 48),
                     interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(back - ref).mean() < 0.5 * np.abs(raw - ref).mean()


def test_validation_counts_a_missed_face_as_wrong():
    class Nothing:
        name = "none"
        crop = IDENTITY

        def detect(self, frame, scale=1.0):
            return []

    class Model:
        def predict(self, x):
            return np.tile([0.0, 1.0], (len(x), 1))

    faces = np.zeros((5, 48, 48), np.uint8)
    v = validate_geometries(Nothing(), Model(), faces, np.ones(5, int), {"identity": IDENTITY})
    assert v.n_found == 0 and v.accuracy_by_geometry == {"identity": 0.0}


def test_embed_face_places_the_face_where_it_says():
    face = np.random.default_rng(1).integers(0, 255, (48, 48)).astype(np.uint8)
    frame, (x, y, s, _) = embed_face(face, 96, np.random.default_rng(2))
    assert frame.shape[:2] == (288, 288) and s == 96
    inner = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[int(y):int(y) + 96, int(x):int(x) + 96]
    np.testing.assert_array_equal(inner, cv2.resize(face, (96, 96), interpolation=cv2.INTER_CUBIC))
