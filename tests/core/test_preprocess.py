"""The preprocessing contract (emoedge.core.preprocess): gray images, normalising, crops, crop geometry, quantising."""

import numpy as np
import pytest

from emoedge.core.preprocess import (
    IDENTITY,
    PREPROCESSING,
    CropGeometry,
    crop_region,
    dequantize,
    face_to_gray48,
    normalize,
    preprocess_face,
    preprocess_faces,
    quantize,
    to_gray,
)


def test_gray_from_bgr_bgra_and_single_channel():
    bgr = np.zeros((10, 12, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    g = to_gray(bgr)
    assert g.shape == (10, 12) and g.dtype == np.uint8
    assert abs(int(g[0, 0]) - 76) <= 1  # 0.299 * 255
    assert to_gray(np.dstack([bgr, np.full((10, 12), 255, np.uint8)]))[0, 0] == g[0, 0]
    y = np.full((10, 12, 1), 7, np.uint8)
    assert (to_gray(y) == 7).all()
    with pytest.raises(ValueError, match="shape"):
        to_gray(np.zeros((2, 2, 2, 2)))


def test_preprocess_face_contract():
    frame = np.full((200, 300, 3), 255, np.uint8)
    frame[50:150, 100:200] = 0
    x = preprocess_face(frame, (100, 50, 100, 100))
    assert x.shape == (48, 48, 1) and x.dtype == np.float32
    assert x.max() == 0.0  # only the dark face region
    whole = preprocess_face(frame)
    assert 0 < whole.mean() < 1
    assert PREPROCESSING["input_size"] == 48


def test_normalize_matches_x_over_255_and_rejects_floats():
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = normalize(img)
    assert out.shape == (16, 16, 1)
    np.testing.assert_allclose(out[..., 0], img / 255.0, rtol=1e-6)
    with pytest.raises(TypeError):
        normalize(img.astype(np.float32))


def test_crop_outside_the_frame_replicates_edges_and_keeps_its_shape():
    img = np.arange(100, dtype=np.uint8).reshape(10, 10)
    inside = crop_region(img, (2, 3, 4, 5))
    np.testing.assert_array_equal(inside, img[3:8, 2:6])
    out = crop_region(img, (-2, -1, 5, 4))          # 2 columns left of, 1 row above the frame
    assert out.shape == (4, 5)
    np.testing.assert_array_equal(out[1:, 2:], img[0:3, 0:3])
    assert (out[0, 2:] == img[0, 0:3]).all() and (out[1:, 0] == img[0:3, 0]).all()
    grown = crop_region(img, (4, 4, 2, 2), margin=0.5)   # 1 px each side
    np.testing.assert_array_equal(grown, img[3:7, 3:7])
    with pytest.raises(ValueError, match="outside"):
        crop_region(img, (20, 20, 5, 5))
    with pytest.raises(ValueError, match="positive"):
        crop_region(img, (0, 0, 0, 5))


def test_crop_geometry_maps_a_detector_box_to_the_training_crop():
    assert IDENTITY.apply((10, 20, 30, 40)) == (10, 20, 30, 40)
    g = CropGeometry(scale_x=1.2, scale_y=1.0, shift_x=0.0, shift_y=-0.1)
    x, y, w, h = g.apply((100, 100, 50, 50))
    assert (w, h) == pytest.approx((60, 50)) and (x + w / 2, y + h / 2) == pytest.approx((125, 120))
    assert g.apply((100, 100, 50, 50), margin=0.5)[2] == pytest.approx(120)
    img = np.random.default_rng(0).integers(0, 255, (200, 200)).astype(np.uint8)
    np.testing.assert_array_equal(crop_region(img, (100, 100, 50, 50), geometry=g), img[95:145, 95:155])
    with pytest.raises(ValueError, match="scale_x"):
        CropGeometry(scale_x=0.0)
    with pytest.raises(ValueError, match="shift_y"):
        CropGeometry(shift_y=2.0)


def test_small_faces_are_enlarged_to_48():
    g = face_to_gray48(np.zeros((20, 20), np.uint8))
    assert g.shape == (48, 48)


def test_batch_of_faces():
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3)).astype(np.uint8)
    batch = preprocess_faces(frame, [(0, 0, 40, 40), (50, 50, 60, 60)])
    assert batch.shape == (2, 48, 48, 1)
    np.testing.assert_array_equal(batch[1], preprocess_face(frame, (50, 50, 60, 60)))


def test_quantize_round_trip_with_model_parameters():
    x = np.linspace(0, 1, 11, dtype=np.float32)
    q = quantize(x, 1 / 255, -128, np.int8)
    assert q.dtype == np.int8 and q[0] == -128 and q[-1] == 127
    np.testing.assert_allclose(dequantize(q, 1 / 255, -128), x, atol=1 / 255)
    qu = quantize(x, 1 / 255, 0, np.uint8)
    assert qu[-1] == 255
    assert quantize(x, 0.0, 0, np.float32) is x
    with pytest.raises(ValueError, match="scale 0"):
        quantize(x, 0.0, 0, np.int8)
