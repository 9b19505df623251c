"""Detector boxes mapped to the training crop (CropGeometry), the fit that measures it, and the
detection changes of issue 16 (Haar alt2 + tilted pass, nested boxes dropped)."""

import cv2
import numpy as np
import pytest
from conftest import MEDIA, need_shared

from emoedge.benchmarks.crop_fit import embed_face, fit_geometry, validate_geometries
from emoedge.core.preprocess import IDENTITY, CropGeometry, preprocess_faces
from emoedge.edge.faces.detect import DETECTORS, Face, HaarDetector, drop_nested, make_detector
from emoedge.edge.inference.classify import FaceClassifier
from emoedge.edge.runtime.demo import demo_image
from emoedge.edge.runtime.stats import RunSummary


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


def test_every_detector_declares_a_crop_geometry():
    from emoedge.edge.faces.detect import BLAZEFACE_VARIANTS, BlazeFaceDetector, OpenCVSSDDetector

    classes = {"haar": HaarDetector, "blazeface": BlazeFaceDetector, "blazeface-full": BlazeFaceDetector,
               "ssd": OpenCVSSDDetector}
    assert set(classes) == set(DETECTORS)
    geometries = [HaarDetector.crop, OpenCVSSDDetector.crop] + [v["crop"] for v in BLAZEFACE_VARIANTS.values()]
    for g in geometries:
        assert isinstance(g, CropGeometry)
    assert HaarDetector.crop == IDENTITY                 # measured: its fitted geometry did not help on validation
    assert BLAZEFACE_VARIANTS[128]["crop"].scale_x > 1.1  # BlazeFace's box is tighter than FER2013's crop
    assert OpenCVSSDDetector.crop.shift_y > 0           # the SSD's squared box sits high


def test_classifier_applies_its_detectors_geometry():
    img = demo_image()
    clf = FaceClassifier.from_spec("fast", detector=HaarDetector())
    face = Face(150, 100, 230, 230)
    g = CropGeometry(scale_x=1.3, scale_y=1.3, shift_y=-0.1)
    a = clf.classify_faces(img, [face])[0].probs
    b = clf.classify_faces(img, [face], IDENTITY)[0].probs
    c = clf.classify_faces(img, [face], g)[0].probs
    expect_a = clf.predict(preprocess_faces(img, [face.box], geometry=HaarDetector.crop))[0]
    expect_c = clf.predict(preprocess_faces(img, [face.box], geometry=g))[0]
    np.testing.assert_allclose(a, expect_a, atol=1e-6)
    np.testing.assert_allclose(c, expect_c, atol=1e-6)
    assert not np.allclose(b, c)


def test_nested_boxes_are_dropped_overlapping_faces_kept():
    boxes = np.array([[0, 0, 100, 100], [20, 20, 40, 40], [90, 0, 100, 100], [300, 300, 50, 50]], float)
    assert drop_nested(boxes, np.ones(4)) == [0, 2, 3]
    assert drop_nested(boxes[[1, 0]], np.array([0.9, 0.5])) == [1]   # the larger box wins whatever the score


def test_haar_tilted_pass_finds_a_turned_face_and_maps_it_back():
    img = cv2.cvtColor(demo_image(), cv2.COLOR_BGR2GRAY)
    h, w = img.shape
    big = cv2.copyMakeBorder(img, h // 2, h // 2, w // 2, w // 2, cv2.BORDER_REPLICATE)
    H, W = big.shape
    turned = cv2.warpAffine(big, cv2.getRotationMatrix2D((W / 2, H / 2), -28, 1.0), (W, H),
                            borderMode=cv2.BORDER_REPLICATE)
    upright_only = HaarDetector(tilt_deg=0)
    tilted = HaarDetector()
    upright = upright_only.detect(big)
    assert len(upright) == 1
    if upright_only.detect(turned):
        pytest.skip("this OpenCV build finds the turned face upright; nothing to check")
    found = tilted.detect(turned)
    assert len(found) == 1
    # the face's centre, turned with the frame
    ux, uy = upright[0].x + upright[0].w / 2, upright[0].y + upright[0].h / 2
    cx, cy = cv2.getRotationMatrix2D((W / 2, H / 2), -28, 1.0) @ np.array([ux, uy, 1.0])
    f = found[0]
    assert abs(f.x + f.w / 2 - cx) < 0.25 * f.w and abs(f.y + f.h / 2 - cy) < 0.25 * f.h


@pytest.mark.shared
@pytest.mark.parametrize("photo, n", [("obama_and_biden.jpg", 2), ("two_people.jpg", 2)])
def test_haar_returns_the_real_faces_only(photo, n):
    path = MEDIA / photo
    need_shared(path)
    faces = make_detector("haar").detect(cv2.imread(str(path)))
    assert len(faces) == n, [f.box for f in faces]
    assert min(f.w for f in faces) > 150          # both are large frontal faces, no collar or hand


def test_run_summary_explains_uncertain():
    s = RunSummary(source="demo", model="m.tflite", detector="haar", frames=3, duration_s=1.0, fps=3.0,
                   dropped_frames=0, faces_seen=1, frames_with_faces=3, detection_frames=1, detections=1,
                   classifications=3, labels={"uncertain": 2, "neutral": 1}, budget_ms=66, budget_hits=3,
                   budget_misses=0, misses_by_stage={}, latency={}, events_written=0, intervals_written=0,
                   stopped_by="end", uncertain_below=0.4, uncertain_top={"angry": 2}, uncertain_mean_confidence=0.35)
    text = s.text()
    assert "uncertain (2 of 3 face-frames) is not an emotion" in text
    assert "below uncertain_below 0.40" in text and "angry 2" in text and "mean 0.35" in text
    s2 = RunSummary(**{**s.__dict__, "labels": {"neutral": 3}})
    assert "is not an emotion" not in s2.text()
