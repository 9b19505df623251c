import numpy as np
import pytest

from emoedge.edge.preprocess import (
    PREPROCESSING,
    clip_box,
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


def test_box_is_clipped_and_margin_grows_it():
    assert clip_box((-10, -10, 50, 50), 100, 100) == (0, 0, 40, 40)
    assert clip_box((10, 10, 20, 20), 100, 100, margin=0.5) == (0, 0, 40, 40)
    with pytest.raises(ValueError, match="outside"):
        clip_box((200, 200, 10, 10), 100, 100)
    with pytest.raises(ValueError, match="positive"):
        clip_box((0, 0, 0, 10), 100, 100)


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
